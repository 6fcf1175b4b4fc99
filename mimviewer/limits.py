"""Bounds on what a small file or a flag may ask for: sizes, value types, memory.

A config that says ``aft = 10**9`` or ``num_hidden = 6000`` is a few bytes; building or
running what it describes is not. Everything a file or flag states is checked here
*before* anything is allocated or read: values have the right type, lie in a range, and
the memory the work needs (weights, a rollout's frames and states) fits what this machine
can hold. A refusal names the source (file or flag), the field and the limit.

The memory budget is the available memory (``MemAvailable``, or the address-space limit
when one is set), or ``MIMVIEWER_MEMORY_LIMIT`` (bytes, e.g. ``2e9``) when set.
"""

from __future__ import annotations

import json
import math
import os
import resource
from collections.abc import Mapping
from typing import Any

from mimviewer.errors import ConfigError, MimviewerError

# Hard ranges of ModelConfig fields: far beyond any published model, small enough that
# nothing built from them runs for ever.
FIELD_RANGES: dict[str, tuple[int, int]] = {
    "filter_size": (1, 63),
    "stride": (-(2**31), 2**31),  # a whole number; ModelConfig.validate says why only 1 works
    "patch_size": (1, 64),
    "channels": (1, 64),
    "height": (1, 16384),
    "width": (1, 16384),
    "pre": (1, 10_000),
    "aft": (1, 10_000),
}
MAX_HIDDEN = 16384  # hidden channels (or units) of one layer
MAX_LAYERS = 64
MAX_NAME = 64  # characters of an architecture or units name
MAX_NESTING = 8  # depth of an ``options`` value (dicts and lists)
MAX_OPTION_ITEMS = 256  # keys, list items and characters in ``options`` values
MAX_STEPS = FIELD_RANGES["pre"][1] + FIELD_RANGES["aft"][1]
MAX_BATCH = 4096
MAX_CONFIG_BYTES = 1 << 20  # a config file (.py / .json) is a few KB; 1 MB is plenty
ABSOLUTE_FALLBACK = 4 << 30  # when the machine cannot say how much memory it has


def shorten(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a 1 MB name is never echoed back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 12]}... ({len(text):,} chars)"


def json_object(
    text: str, error: type[MimviewerError], invalid: str, not_object: str, width: int = 60
) -> dict[str, Any]:
    """JSON text that must hold an object; anything else is one ``error`` line: ``invalid (why)``
    for text that does not parse (RecursionError: nested thousands deep), ``not_object`` otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"{invalid} ({shorten(str(exc), width)})") from None
    if not isinstance(value, dict):
        raise error(not_object)
    return value


def gib(n: float) -> str:
    """Bytes for people: 1.5 GiB, or 50 MiB below a gibibyte."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# -- memory ------------------------------------------------------------------------------


def memory_budget() -> int:
    """Bytes a single piece of work (weights, a rollout) may take on this machine."""
    override = os.environ.get("MIMVIEWER_MEMORY_LIMIT")
    if override:
        try:
            return int(float(override))
        except ValueError:
            raise MimviewerError(
                f"MIMVIEWER_MEMORY_LIMIT={shorten(override)} is not a number of bytes"
            ) from None
    available = _mem_available()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1):
        available = min(available, max(0, soft - _virtual_size()))
    return int(available * 0.8)


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return ABSOLUTE_FALLBACK


def _virtual_size() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def check_memory(needed: int, what: str, *, advice: str) -> None:
    """Refuse work that needs more than :func:`memory_budget` bytes."""
    budget = memory_budget()
    if needed > budget:
        raise MimviewerError(
            f"{what} would need about {gib(needed)}; this machine can hold {gib(budget)}; {advice}"
        )


# -- ModelConfig values ------------------------------------------------------------------


def _as_int(value: Any, name: str) -> int:
    """An integer field: int, or a float/str that is exactly one (JSON, OpenSTL strings)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) <= 12:
        return int(value)
    raise ConfigError(f"{name} must be a whole number, not {shorten(value)}")


def check_int(value: Any, name: str, lo: int, hi: int) -> int:
    n = _as_int(value, name)
    if not lo <= n <= hi:
        raise ConfigError(f"{name} must be in {lo}..{hi}, got {shorten(n)}")
    return n


def check_nesting(value: Any, name: str, depth: int = 0) -> None:
    """Plain JSON-like data, at most :data:`MAX_NESTING` deep and :data:`MAX_OPTION_ITEMS` wide."""
    if depth > MAX_NESTING:
        raise ConfigError(f"{name} is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, bool | int | float | None):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {value!r}")
        return
    if isinstance(value, str):
        if len(value) > MAX_OPTION_ITEMS:
            raise ConfigError(f"{name} is a string of {len(value):,} characters (at most {MAX_OPTION_ITEMS})")
        return
    if isinstance(value, Mapping | list | tuple):
        if len(value) > MAX_OPTION_ITEMS:
            raise ConfigError(f"{name} holds {len(value):,} items (at most {MAX_OPTION_ITEMS})")
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for k, v in items:
            check_nesting(v, f"{name}[{shorten(k, 20)}]", depth + 1)
        return
    raise ConfigError(f"{name} holds a {type(value).__name__}, not plain data")


def check_config_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Type- and range-checked copies of ModelConfig fields (raises ConfigError naming the field)."""
    out = dict(fields)
    for name in ("arch", "units"):
        if name in out:
            value = out[name]
            if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
                raise ConfigError(
                    f"{name} must be a name of at most {MAX_NAME} characters, not {shorten(value)}"
                )
    if "num_hidden" in out:
        hidden = out["num_hidden"]
        if isinstance(hidden, str | bytes) or not hasattr(hidden, "__len__"):
            raise ConfigError(f"num_hidden must be a list of sizes, not {shorten(hidden)}")
        if not 1 <= len(hidden) <= MAX_LAYERS:
            raise ConfigError(f"num_hidden must list 1..{MAX_LAYERS} layer sizes, got {len(hidden):,}")
        out["num_hidden"] = tuple(check_int(n, "num_hidden", 1, MAX_HIDDEN) for n in hidden)
    for name, (lo, hi) in FIELD_RANGES.items():
        if name in out:
            out[name] = check_int(out[name], name, lo, hi)
    if "layer_norm" in out and not isinstance(out["layer_norm"], bool | int):
        raise ConfigError(f"layer_norm must be true or false, not {shorten(out['layer_norm'])}")
    if "options" in out:
        if not isinstance(out["options"], Mapping):
            raise ConfigError(f"options must be a mapping of names to values, not {shorten(out['options'])}")
        check_nesting(out["options"], "options")
    return out


# -- flags -------------------------------------------------------------------------------


def check_flag(value: Any, flag: str, lo: float, hi: float) -> None:
    """A numeric command-line value: finite and in [lo, hi]; the message names the flag."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise MimviewerError(f"{flag} must be a finite number, got {value}")
    if not lo <= value <= hi:
        raise MimviewerError(f"{flag} must be in {lo:g}..{hi:g}, got {shorten(value)}")


def check_fps(fps: float) -> None:
    """Frames per second of an animation: 1 frame per minute up to 240 per second."""
    check_flag(fps, "--fps", 1 / 60, 240)


def rollout_bytes(config: Any, pre: int, aft: int, batch: int, *, trace: bool = False) -> int:
    """Bytes a rollout needs: the frames in and out, every layer's state and a step's temporaries.

    ``config`` is a ModelConfig (duck-typed: no import of the nets here). States count
    four tensors per layer (hidden, cell, memory, a gate temporary) and a step's gates
    eight; a trace keeps every gate of every step.
    """
    frame = config.channels * config.height * config.width * 4
    grid = config.grid_height * config.grid_width * 4
    hidden = sum(config.num_hidden)
    steps = pre + aft
    total = batch * (steps * frame * 2 + hidden * grid * 12)
    if trace:
        total += batch * steps * hidden * grid * 8
    return int(total)


def check_rollout(config: Any, pre: int, aft: int, batch: int, *, source: str, trace: bool = False) -> None:
    """Refuse a rollout (``--pre/--aft/--batch-size``, frame size) this machine cannot hold."""
    check_flag(pre, "--pre", 1, FIELD_RANGES["pre"][1])
    check_flag(aft, "--aft", 1, FIELD_RANGES["aft"][1])
    check_flag(batch, "--batch-size", 1, MAX_BATCH)
    needed = rollout_bytes(config, pre, aft, batch, trace=trace)
    check_memory(
        needed,
        f"{source}: a rollout of {pre}+{aft} frames of {config.channels}x{config.height}x{config.width}, "
        f"batch {batch}{', with its trace' if trace else ''},",
        advice="lower --pre/--aft/--batch-size or use smaller frames",
    )


def check_training(config: Any, pre: int, aft: int, batch: int, held_out: int) -> None:
    """Refuse a training run whose batches (kept for backprop) and held-out set cannot fit."""
    needed = rollout_bytes(config, pre, aft, batch, trace=True) + rollout_bytes(config, pre, aft, held_out)
    check_memory(
        needed,
        f"train: batches of {batch} x {pre}+{aft} frames of {config.channels}x{config.height}x{config.width} "
        f"(kept for backprop) and {held_out} held-out sequences",
        advice="lower --batch-size/--val-sequences/--pre/--aft or --size",
    )


# -- training recipes (flags and train.json) -----------------------------------------------

# field -> (kind, lo, hi, flag): a recipe value outside these makes no sense or divides by zero.
TRAIN_RANGES: dict[str, tuple[type, float, float]] = {
    "size": (int, 4, 4096),
    "steps": (int, 1, 10**9),
    "batch_size": (int, 1, MAX_BATCH),
    "lr": (float, 1e-12, 10.0),
    "weight_decay": (float, 0.0, 10.0),
    "warmup": (int, 0, 10**9),
    "clip": (float, 0.0, 1e6),
    "sampling_stop": (float, 1e-6, 1.0),
    "sampling_start": (float, 0.0, 1.0),
    "aux_weight": (float, 0.0, 1e6),
    "val_every": (int, 1, 10**9),
    "val_sequences": (int, 1, 10_000),
    "checkpoint_every": (int, 1, 10**9),
    "seed": (int, 0, 2**62),
}


def check_train_values(values: Mapping[str, Any]) -> None:
    """Every numeric field of a training recipe: right type, finite, in range (names the flag)."""
    for name, (kind, lo, hi) in TRAIN_RANGES.items():
        if name not in values:
            continue
        value, flag = values[name], "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MimviewerError(f"{flag} must be a number, not {shorten(value)}")
        if kind is int and not (isinstance(value, int) or float(value).is_integer()):
            raise MimviewerError(f"{flag} must be a whole number, not {shorten(value)}")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise MimviewerError(f"{flag} must be in {lo:g}..{hi:g}, got {shorten(value)}")
    start, stop = values.get("sampling_start", 0.0), values.get("sampling_stop", 1.0)
    if values.get("sampling") == "reverse" and not start < stop:
        raise MimviewerError(f"--sampling-stop ({stop:g}) must come after sampling_start ({start:g})")
    for name in ("arch", "data", "schedule", "sampling", "loss"):
        if name in values and (not isinstance(values[name], str) or len(values[name]) > 4096):
            raise MimviewerError(f"{name} must be a name, not {shorten(values[name])}")
    if "model" in values:
        if not isinstance(values["model"], Mapping):
            raise MimviewerError(f"model must map config fields to values, not {shorten(values['model'])}")
        check_nesting(values["model"], "model")


# -- every command's flags, by name -------------------------------------------------------

# A flag of this name means the same in every command that has it (predict, export, view,
# watch, sweep, attribute, what-if, delta, study, ...): its range is checked once, in cli.py,
# before the command runs, so a new command's --pre or --fps is bounded too.
FLAG_RANGES: dict[str, tuple[float, float]] = {
    "pre": (1, FIELD_RANGES["pre"][1]),
    "aft": (1, FIELD_RANGES["aft"][1]),
    "batch_size": (1, MAX_BATCH),
    "fps": (1 / 60, 240),
    "sequences": (1, 10_000),
    "start": (0, 2**40),
    "frame": (0, 2**40),
    "seed": (0, 2**62),
    "lo": (0.0, 1.0),
    "hi": (0.0, 1.0),
    "threads": (1, 1024),
    "channels": (1, FIELD_RANGES["channels"][1]),
    "patch_size": (1, FIELD_RANGES["patch_size"][1]),
    "filter_size": (1, FIELD_RANGES["filter_size"][1]),
    "interval": (1e-6, 1e6),
    "settle": (0.0, 86_400.0),
    "give_up": (0.0, 1e9),
    "max_forecasts": (0, 2**40),
    "stop_after": (0, 1e12),
    "eps": (0.0, 1e6),
    "blur_sigma": (1e-6, 1e4),
}


def check_flags(values: Mapping[str, Any]) -> None:
    """Every parsed flag: floats finite (``--fps nan``, ``--lr inf``), known names in range."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise MimviewerError(f"{flag} must be a finite number, got {value}")
        if name in FLAG_RANGES:
            check_flag(value, flag, *FLAG_RANGES[name])
