"""Read every checkpoint flavour, infer the model config from the weights, write our own format.

Flavours (DESIGN.md, "Checkpoints"):

* ``mimviewer`` — our safetensors file: weights + the ModelConfig JSON in its metadata;
* ``openstl-lightning`` — OpenSTL's Lightning ``.ckpt``: ``{'state_dict': {'model.<key>': ...},
  'hyper_parameters': {...}, ...}``;
* ``training-state`` — ``{'state_dict': ..., 'optimizer': ...}`` files;
* ``predrnn-original`` — the original PredRNN/MIM code's ``{'net_param': state_dict}``;
* ``state-dict`` — a raw state dict (``.pth``), keys possibly prefixed with ``module.``;
* ``safetensors`` — a safetensors file of weights without our config.

Pickled files are read with ``torch.load(..., weights_only=True)`` only: a file that asks to
run code on unpickling is refused, never executed. Beyond torch's own allow-list, only
plain-data stand-ins are allowed: Lightning's ``AttributeDict`` and ``defaultdict`` come back
as dicts, ``argparse.Namespace`` as a namespace, plain builtin types as themselves; and the
training state a Lightning file keeps beside the weights (optimizer and LR-scheduler
objects, numpy scalars, paths: a fixed list of name prefixes, ``_INERT_PREFIXES``) is
replaced by an inert object whose real class is never imported. A pickle is scanned with
``pickletools`` (nothing runs) to name what it asks for.

When a file carries no config, it is inferred from the weights (layer count, hidden sizes,
filter and patch size, layer norm, H'/W' from LayerNorm or peephole shapes); where the
weights do not fix the frame size, the caller passes it (``frame_size``, the input's).
Precedence, lowest first: inferred < config stored in the file < ``config_file`` <
``channels`` / ``overrides``.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import pickle
import pickletools
import re
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mimviewer import checkpoint_guard as guard
from mimviewer.errors import CheckpointError, ConfigError, ShapeError
from mimviewer.limits import MAX_CONFIG_BYTES, check_config_values, shorten
from mimviewer.nets import ModelConfig, RecurrentModel, create_model, default_config, model_entry

CONFIG_KEY = "mimviewer.config"  # safetensors metadata key holding the ModelConfig JSON
FORMAT_KEY = "mimviewer.format"  # safetensors metadata key marking our own files
FORMAT_VERSION = "1"

# OpenSTL method names (any case, punctuation ignored) -> our registry names.
OPENSTL_METHODS: dict[str, str] = {
    "convlstm": "convlstm",
    "predrnn": "predrnn",
    "predrnnv2": "predrnn_v2",
    "predrnnpp": "predrnn_pp",
    "predrnnplusplus": "predrnn_pp",
    "mim": "mim",
    "e3dlstm": "e3d_lstm",
    "lstm": "lstm",
    "lstmp": "lstmp",
    "sru": "sru",
}


@dataclass
class LoadedCheckpoint:
    """A model ready to run, and where it came from."""

    model: RecurrentModel
    config: ModelConfig
    # mimviewer | safetensors | openstl-lightning | training-state | predrnn-original | state-dict
    format: str
    path: Path
    metadata: dict[str, str]
    frame_size_fixed: bool = False  # True when some weight's shape depends on the frame size


# -- reading files -------------------------------------------------------------------------


class _AttributeDict:
    """Stand-in for a dict subclass (Lightning's AttributeDict, defaultdict): comes back as a dict.

    Unpickling creates it with ``cls.__new__(cls)`` and then sets items, which the weights-only
    unpickler only allows on a plain dict, so ``__new__`` returns one.
    """

    def __new__(cls, *args: Any) -> dict:  # type: ignore[misc]
        return {}


class _Namespace(argparse.Namespace):
    """Stand-in for argparse.Namespace (older Lightning hyper-parameters)."""


class _Inert:
    """Stand-in for a training extra that is not weights (an LR scheduler, a numpy scalar, a path).

    The real class or function is never imported or called: building this ignores its
    arguments and state, so whatever the file asked for, nothing runs.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "<not read>"


# Globals a legitimate Lightning checkpoint references, mapped to plain-data stand-ins.
_SAFE_GLOBALS: list[tuple[Any, str]] = [
    (_AttributeDict, "lightning.fabric.utilities.data.AttributeDict"),
    (_AttributeDict, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (_AttributeDict, "lightning.pytorch.utilities.parsing.AttributeDict"),
    (_AttributeDict, "collections.defaultdict"),
    (_Namespace, "argparse.Namespace"),
    # Plain types that older pickles build by calling them: calling these runs nothing else.
    *((t, f"builtins.{t.__name__}") for t in (dict, list, tuple, set, frozenset, int, float, bool, str)),
    (int, "builtins.long"),
]
# Training extras (optimizer/scheduler state, numpy scalars, paths) that may sit beside the
# weights: their globals are replaced by :class:`_Inert`, so the weights can still be read.
# (Old OneCycleLR state holds a bound method, pickled through builtins.getattr: inert here too.)
_INERT_PREFIXES = (
    "torch.optim.",
    "numpy.",
    "pathlib.",
    "datetime.",
    "functools.partial",
    "builtins.getattr",
    "__builtin__.getattr",
    "copyreg._reconstructor",
    "lightning.",
    "pytorch_lightning.",
)


def _is_training_extra(name: str) -> bool:
    return name.startswith(_INERT_PREFIXES)


@dataclass
class _RawCheckpoint:
    format: str
    state_dict: dict[str, torch.Tensor]
    stated: dict[str, Any]  # ModelConfig fields the file itself states
    metadata: dict[str, str]


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then '{'."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return header_len <= path.stat().st_size - 8


def _read_safetensors(path: Path) -> _RawCheckpoint:
    from safetensors import SafetensorError, safe_open

    guard.check_safetensors_header(path)  # declared dtypes, shapes and sizes, before any tensor is read
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc
    stated: dict[str, Any] = {}
    if CONFIG_KEY in metadata:
        try:
            stated = json.loads(metadata.pop(CONFIG_KEY))
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(
                f"{path}: the config in its metadata is not valid JSON ({shorten(str(exc), 60)})"
            ) from None
        if not isinstance(stated, dict):
            raise CheckpointError(f"{path}: the config in its metadata is not a JSON object")
    fmt = "mimviewer" if metadata.pop(FORMAT_KEY, None) or stated else "safetensors"
    return _RawCheckpoint(fmt, tensors, stated, metadata)


def _weights_only_load(path: Path, inert: list[str]) -> Any:
    safe = _SAFE_GLOBALS + [(_Inert, name) for name in inert]
    mmap = guard.check_zip_pickle(path)  # a zip is bounded by its directory, then mapped, not read whole
    with warnings.catch_warnings(), torch.serialization.safe_globals(safe):
        warnings.simplefilter("ignore")  # e.g. "pickle protocol 4": harmless, and not the user's to fix
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; training extras become inert, code-running pickles are refused."""
    try:
        return _weights_only_load(path, [])
    except CheckpointError:
        raise
    except Exception as exc:
        error = exc
    asked = _pickle_globals(path)  # read with pickletools: nothing is imported or run
    if isinstance(error, pickle.UnpicklingError):
        extras = sorted({n for n in asked if _is_training_extra(n)})
        extras += [n.replace("builtins.", "__builtin__.", 1) for n in extras if n.startswith("builtins.")]
        refused = [n for n in asked if not (n.startswith(_TORCH_OWN) or _is_training_extra(n))]
        if extras and not refused:
            try:
                return _weights_only_load(path, extras)
            except Exception as exc:
                error = exc
        wanted = re.search(r"GLOBAL ([\w.]+)", str(error))
        refused = refused or ([wanted.group(1)] if wanted else [])
        if refused:
            raise CheckpointError(
                f"{path}: refused to load: unpickling it would run or import code ({refused[0]}); "
                "only weights, plain containers and known training state are read"
            ) from None
    detail = "" if isinstance(error, pickle.UnpicklingError | KeyError) else f" ({_first_line(error)})"
    raise CheckpointError(
        f"{path}: not a readable checkpoint: corrupt, truncated or another kind of file{detail}"
    ) from None


# Globals torch itself allows when reading weights (tensor rebuilds, storages, OrderedDict).
_TORCH_OWN = ("torch.", "collections.OrderedDict", "_codecs.encode")


def _pickle_globals(path: Path) -> list[str]:
    """Every global a pickle would import, read with pickletools (nothing is imported or run)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            with path.open("rb") as f:
                data = f.read(64 << 20)
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    strings: list[str] = []  # strings pushed so far (STACK_GLOBAL takes module and name from them)
    memo: dict[int, str] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[int(arg)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                strings.append(memo[int(arg)])
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # not a pickle, or a truncated one: whatever was read so far counts
        pass
    safe = {name for _, name in _SAFE_GLOBALS}
    found = [re.sub(r"^__builtin__\.", "builtins.", n) for n in found]  # protocol 2 spells it so
    return [n for n in found if n not in safe]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _tensors_only(path: Path, d: Mapping) -> dict[str, torch.Tensor]:
    tensors = {str(k): v for k, v in d.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: not a checkpoint (no weight tensors found)")
    guard.check_tensor_storage(path, tensors)  # declared shapes own their bytes (no stride-0 blow-up)
    return tensors


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` and Lightning's ``model.`` prefixes (in either order).

    A Lightning module may hold tensors beside its model (a loss's buffers): only ``model.*`` is kept.
    """

    def drop_common(d: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in d.items()} if all(k.startswith(prefix) for k in d) else d

    state_dict = drop_common(state_dict, "module.")
    if any(k.startswith("model.") for k in state_dict):
        state_dict = {k[len("model.") :]: v for k, v in state_dict.items() if k.startswith("model.")}
    return drop_common(state_dict, "module.")


def _read_pickled(path: Path) -> _RawCheckpoint:
    obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, not a dict)")
    metadata: dict[str, str] = {}
    stated: dict[str, Any] = {}
    if isinstance(obj.get("state_dict"), Mapping):
        hyper = obj.get("hyper_parameters")
        is_lightning = isinstance(hyper, Mapping) or "pytorch-lightning_version" in obj
        fmt = "openstl-lightning" if is_lightning else "training-state"
        state_dict = _tensors_only(path, obj["state_dict"])
        if isinstance(hyper, Mapping):
            stated = openstl_fields(dict(hyper), source=f"{path} (hyper_parameters)")
        elif isinstance(hyper, argparse.Namespace):
            stated = openstl_fields(vars(hyper), source=f"{path} (hyper_parameters)")
        for k in ("epoch", "global_step", "pytorch-lightning_version", "iter", "itr"):
            if k in obj and isinstance(obj[k], str | int | float):
                metadata[k] = str(obj[k])
    elif isinstance(obj.get("net_param"), Mapping):
        fmt = "predrnn-original"
        state_dict = _tensors_only(path, obj["net_param"])
    else:
        fmt = "state-dict"
        state_dict = _tensors_only(path, obj)
    return _RawCheckpoint(fmt, _strip_prefixes(state_dict), stated, metadata)


def _read_file(path: Path) -> _RawCheckpoint:
    guard.check_readable(path)  # missing, folder, empty, permission denied: said as such
    if path.suffix == ".safetensors" or _is_safetensors(path):
        return _read_safetensors(path)
    return _read_pickled(path)


# -- OpenSTL configs (hyper-parameters and .py config files) --------------------------------


def openstl_fields(d: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """ModelConfig fields from OpenSTL names (method, num_hidden "64,64", in_shape, ...)."""
    fields: dict[str, Any] = {}
    if "method" in d and isinstance(d["method"], str):
        key = re.sub(r"[^a-z0-9]", "", d["method"].lower())
        if key not in OPENSTL_METHODS:
            raise CheckpointError(
                f"{source}: method {shorten(d['method'])} is not a recurrent model mimviewer knows"
            )
        fields["arch"] = OPENSTL_METHODS[key]
    try:
        if "num_hidden" in d:
            hidden = d["num_hidden"]
            items = hidden.split(",") if isinstance(hidden, str) else hidden
            if len(items) > 4096:
                raise ValueError(f"num_hidden lists {len(items):,} layers")
            fields["num_hidden"] = tuple(int(n) for n in items)
        for ours, theirs in (
            ("filter_size", "filter_size"),
            ("stride", "stride"),
            ("patch_size", "patch_size"),
            ("pre", "pre_seq_length"),
            ("aft", "aft_seq_length"),
        ):
            if d.get(theirs) is not None:
                fields[ours] = int(d[theirs])
        if d.get("layer_norm") is not None:
            fields["layer_norm"] = bool(int(d["layer_norm"]))
        if d.get("in_shape") is not None:
            _, c, h, w = (int(n) for n in d["in_shape"])
            fields.update(channels=c, height=h, width=w)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{source}: unreadable model settings ({shorten(str(exc), 80)})") from None
    if fields.get("arch") == "e3d_lstm":
        fields.pop("filter_size", None)  # OpenSTL's E3D-LSTM ignores it: its kernels are always (2, 5, 5)
    return fields


def read_config_file(path: str | Path) -> dict[str, Any]:
    """ModelConfig fields from an OpenSTL config ``.py`` (read as data, never executed) or our JSON.

    Only top-level ``name = <literal>`` assignments are accepted; anything else (a call, an
    import, a computed value) is refused with the file and line.
    """
    path = Path(path)
    size = guard.check_readable(path, ConfigError, "config")
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes is not a config file (at most {MAX_CONFIG_BYTES:,})")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise guard.os_error(path, exc, ConfigError) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a config file (binary, not UTF-8 text)") from None
    if path.suffix == ".json":
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            raise ConfigError(f"{path}: not valid JSON ({shorten(str(exc), 60)})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a JSON object of config fields")
        try:
            return check_config_values(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(f"{path}: not a Python config file (line {exc.lineno}: {exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):  # nested too deep for the parser; NUL bytes
        raise ConfigError(f"{path}: not a config file (nested too deeply or not text)") from None
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)):
            raise ConfigError(
                f"{path}:{node.lineno}: only 'name = value' assignments are read from a config file"
            )
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise ConfigError(
                f"{path}:{node.lineno}: {ast.unparse(node.targets[0])} is not a literal value "
                "(config files are read as data, never executed)"
            ) from None
        for target in node.targets:
            values[target.id] = value  # type: ignore[union-attr]
    fields = openstl_fields(values, source=str(path))
    try:
        return check_config_values(fields)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# -- inferring the config from the weights -------------------------------------------------


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The architecture whose key names and shapes these weights have, or None."""
    keys = set(state_dict)
    if any(k.startswith("stlstm_layer") for k in keys):
        return "mim"
    if "adapter.weight" in keys:
        return "predrnn_v2"
    if any(k.startswith("gradient_highway.") or ".conv_c2m." in k for k in keys):
        return "predrnn_pp"
    first = state_dict.get("cell_list.0.conv_x.0.conv3d.weight")
    if first is not None and first.ndim == 5:
        return "e3d_lstm"
    if "cell_list.0.conv_m.0.weight" in keys:
        return "predrnn"
    conv_x = state_dict.get("cell_list.0.conv_x.0.weight")
    conv_h = state_dict.get("cell_list.0.conv_h.0.weight")
    if conv_x is not None and conv_h is not None and conv_x.shape[0] == 4 * conv_h.shape[1]:
        return "convlstm"
    return _detect_rnn1d(state_dict)


def _detect_rnn1d(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The 1-D family (mimviewer/nets/rnn1d.py): linear cells, SRU with peepholes, LSTMP with proj."""
    if "cell_list.0.linear_x.weight" not in state_dict:
        return None
    if "cell_list.0.peephole" in state_dict:
        return "sru"
    return "lstmp" if "cell_list.0.proj.weight" in state_dict else "lstm"


# Where each architecture keeps the tensors that reveal its sizes. ``{i}`` is the layer index.
_FIRST_CONV = {  # the conv that reads the patchified frame: in_channels = p*p*C, kernel = filter
    "e3d_lstm": "cell_list.0.conv_x.0.conv3d.weight",
    "mim": "stlstm_layer.0.conv_x.0.weight",
}
_HIDDEN_CONVS = {  # convs whose in_channels is the layer's hidden size (first match per layer)
    "e3d_lstm": ("cell_list.{i}.conv_h.0.conv3d.weight",),
    "mim": ("stlstm_layer.{i}.conv_h.0.weight", "stlstm_layer.{i}.conv_s_cc.0.weight"),
}
_GRID_KEY = re.compile(r"(\.conv_\w+\.1\.weight|ct_weight|oc_weight|_norm_c_t\.weight)$")
_LAYER_NORM_KEY = re.compile(r"\.conv_\w+\.1\.weight$")


def _layer_prefix(arch: str) -> str:
    return "stlstm_layer" if arch == "mim" else "cell_list"


def infer_config_fields(
    state_dict: Mapping[str, torch.Tensor],
    arch: str,
    *,
    channels: int | None = None,
    patch_size: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """ModelConfig fields these weights fix: hidden sizes, filter, patch, layer norm, frame size.

    ``channels`` (or ``patch_size``) resolves p*p*C; without either, C is guessed as the
    smallest of 1, 3 that makes p*p*C a square (pass ``channels`` when that guess is wrong).
    The frame size is only returned when a LayerNorm or peephole weight fixes it.
    """
    if arch in ("lstm", "lstmp", "sru"):
        return _infer_rnn1d_fields(state_dict, arch, channels=channels, frame_size=frame_size)
    prefix = _layer_prefix(arch)
    layers = sorted({int(m.group(1)) for k in state_dict if (m := re.match(rf"{prefix}\.(\d+)\.", k))})
    first_key = _FIRST_CONV.get(arch, f"{prefix}.0.conv_x.0.weight")
    if not layers or first_key not in state_dict:
        raise KeyError(first_key)
    first = state_dict[first_key]
    fields: dict[str, Any] = {"arch": arch, "filter_size": int(first.shape[-1])}
    hidden = []
    for i in layers:
        templates = _HIDDEN_CONVS.get(arch, (f"{prefix}.{{i}}.conv_h.0.weight",))
        key = next((t.format(i=i) for t in templates if t.format(i=i) in state_dict), None)
        if key is None:
            raise KeyError(templates[0].format(i=i))
        hidden.append(int(state_dict[key].shape[1]))
    fields["num_hidden"] = tuple(hidden)
    patch_channels = int(first.shape[1])  # p*p*C
    if patch_size is not None and channels is None and patch_channels % (patch_size * patch_size) == 0:
        channels = patch_channels // (patch_size * patch_size)
    for c in (channels,) if channels is not None else (1, 3):
        p = math.isqrt(patch_channels // c) if patch_channels % c == 0 else 0
        if p * p * c == patch_channels:
            fields.update(channels=c, patch_size=p)
            break
    else:
        raise ConfigError(
            f"the first layer reads {patch_channels} channels, which is not p*p*C for "
            f"C={channels if channels is not None else '1 or 3'}; give the frame's channel count"
        )
    fields["layer_norm"] = any(_LAYER_NORM_KEY.search(k) for k in state_dict)
    if arch == "e3d_lstm":  # clips of window_length frames; 3-D kernels span temporal_filter_size
        fields["options"] = {
            "window_length": int(state_dict["cell_list.0._norm_c_t.weight"].shape[1]),
            "temporal_filter_size": int(first.shape[2]),
        }
    grid = next(
        (v.shape[-2:] for k, v in sorted(state_dict.items()) if _GRID_KEY.search(k) and v.ndim >= 3), None
    )
    if grid is not None:
        fields.update(height=int(grid[0]) * fields["patch_size"], width=int(grid[1]) * fields["patch_size"])
    return fields


def _infer_rnn1d_fields(
    state_dict: Mapping[str, torch.Tensor],
    arch: str,
    *,
    channels: int | None,
    frame_size: tuple[int, int] | None,
) -> dict[str, Any]:
    """The 1-D family flattens whole frames: the head's outputs are C*H*W.

    H and W come from ``frame_size`` when C*H*W matches, else from a square frame; the patch
    size only reorders the vector, so the weights cannot tell it (the stated or default one).
    """
    layers = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"cell_list\.(\d+)\.", k))})
    blocks = 3 if arch == "sru" else 4
    fields: dict[str, Any] = {
        "arch": arch,
        "num_hidden": tuple(
            int(state_dict[f"cell_list.{i}.linear_x.weight"].shape[0]) // blocks for i in layers
        ),
    }
    options: dict[str, Any] = {}
    if "embed.weight" in state_dict:
        options["embed"] = int(state_dict["embed.weight"].shape[0])
    if arch == "lstmp":
        options["proj"] = [int(state_dict[f"cell_list.{i}.proj.weight"].shape[0]) for i in layers]
    if options:
        fields["options"] = options
    frame = int(state_dict["head.weight"].shape[0])  # C*H*W
    c = channels or 1
    if frame_size is not None and c * frame_size[0] * frame_size[1] == frame:
        fields.update(channels=c, height=int(frame_size[0]), width=int(frame_size[1]))
    elif frame % c == 0 and math.isqrt(frame // c) ** 2 == frame // c:
        side = math.isqrt(frame // c)
        fields.update(channels=c, height=side, width=side)
    else:
        raise ConfigError(
            f"the {arch} head writes {frame} values per frame, which is not C*H*W for "
            f"C={c} and a square frame; give the frame's channels and size"
        )
    return fields


# -- building and loading ------------------------------------------------------------------


def _grid_dependent(config: ModelConfig) -> bool:
    """Whether some weight's shape depends on the frame size (LayerNorm, peepholes, 1-D input)."""
    p = config.patch_size
    try:
        with torch.device("meta"):
            a = create_model(config).state_dict()
            b = create_model(config.replace(height=config.height + p, width=config.width + p)).state_dict()
    except Exception:  # a model that cannot be built on the meta device: assume it is fixed
        return True
    return any(a[k].shape != b[k].shape for k in a)


def _describe_keys(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(path: Path, model: RecurrentModel, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Drop the keys the model declares unused, then load strictly; mismatches name the keys."""
    unused = [re.compile(p) for p in model.unused_checkpoint_keys]
    own = model.state_dict()
    state_dict = {k: v for k, v in state_dict.items() if k in own or not any(p.fullmatch(k) for p in unused)}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})"
        for k in set(own) & set(state_dict)
        if state_dict[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_describe_keys(mismatched, 3)}")
    if problems:
        raise CheckpointError(f"{path}: weights do not fit a {model.arch} model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(
    path: str | Path,
    *,
    channels: int | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    frame_size: tuple[int, int] | None = None,
) -> LoadedCheckpoint:
    """Read any supported checkpoint and return the model with its weights loaded.

    ``channels`` is the frame's channel count where the file does not state it (it tells
    p from C in p*p*C); ``overrides`` (ModelConfig fields) win over everything, except that
    an overridden height and width are treated as ``frame_size``.

    ``frame_size`` (H, W) is the input's: used when neither the weights nor a config fix the
    frame size; when the weights fix a different one, a ShapeError names both.
    """
    path = Path(path)
    raw = _read_file(path)
    stated: dict[str, Any] = dict(raw.stated)
    if config_file is not None:
        stated.update(read_config_file(config_file))
    if channels is not None:  # a hint: the file's or config file's own statement wins
        stated.setdefault("channels", int(channels))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if frame_size is None and "height" in overrides and "width" in overrides:
        # A stated frame size is checked like the input's: weights that fix another one say so.
        frame_size = (int(overrides.pop("height")), int(overrides.pop("width")))
    stated.update(overrides)
    config, fixed = resolve_config(
        path, raw.state_dict, stated, infer=raw.format != "mimviewer", frame_size=frame_size
    )
    guard.check_against_model(path, config, raw.state_dict, create_model, load_weights)  # before allocating
    model = create_model(config)
    load_weights(path, model, raw.state_dict)
    model.to(device).eval()
    return LoadedCheckpoint(model, config, raw.format, path, dict(raw.metadata), fixed)


def resolve_config(
    path: Path,
    state_dict: Mapping[str, torch.Tensor],
    stated: dict[str, Any],
    *,
    infer: bool,
    frame_size: tuple[int, int] | None,
) -> tuple[ModelConfig, bool]:
    """The config to build: inferred from the weights (when ``infer``) under the stated fields.

    Returns the config and whether the weights fix the frame size.
    """
    try:  # types and ranges of what the file and flags state, before any arithmetic on them
        stated = check_config_values(stated)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        arch = stated.get("arch") or detect_arch(state_dict)
    except IndexError:  # a tensor with fewer dimensions than any architecture's
        arch = None
    if arch is None:
        raise CheckpointError(
            f"{path}: unknown architecture: its weights match none of the models mimviewer knows "
            f"(first keys: {_describe_keys(sorted(state_dict), 4)}); give --arch and a --config"
        )
    try:
        arch = model_entry(arch).name
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None

    fields: dict[str, Any] = {}
    if infer:
        try:
            fields = infer_config_fields(
                state_dict,
                arch,
                channels=stated.get("channels"),
                patch_size=stated.get("patch_size"),
                frame_size=frame_size,
            )
        except KeyError as exc:
            raise CheckpointError(
                f"{path}: weights do not look like a {arch} model (no {shorten(exc.args[0], 60)})"
            ) from None
        except IndexError:  # a weight with fewer dimensions than the architecture's own
            raise CheckpointError(
                f"{path}: weights do not look like a {arch} model (a weight has too few dimensions)"
            ) from None
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    fields.update(stated)
    fields.pop("arch", None)
    p = int(fields.get("patch_size", model_entry(arch).defaults.get("patch_size", ModelConfig.patch_size)))
    if frame_size is not None and (frame_size[0] % p or frame_size[1] % p):
        raise ShapeError(
            f"the input's frames ({frame_size[0]}x{frame_size[1]}) are not divisible by "
            f"the patch size {p} of {path}"
        )
    if "height" not in fields:  # nothing fixes the frame size: the input's, else the default
        h, w = frame_size if frame_size is not None else (p * max(1, 64 // p),) * 2
        fields.update(height=int(h), width=int(w))
    unknown = set(fields) - (set(ModelConfig.__dataclass_fields__) - {"arch"})
    if unknown:
        raise CheckpointError(f"{path}: unknown config field(s): {', '.join(sorted(unknown))}")
    try:
        config = default_config(arch, **fields)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None

    fixed = _grid_dependent(config)
    if frame_size is not None and (config.height, config.width) != tuple(frame_size):
        if fixed:
            raise ShapeError(
                f"{path} expects {config.height}x{config.width} frames (some weights' shapes fix the "
                f"frame size), the input has {frame_size[0]}x{frame_size[1]}"
            )
        config = config.replace(height=int(frame_size[0]), width=int(frame_size[1]))
    return config, fixed


# -- our own format ------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path, model: RecurrentModel, metadata: Mapping[str, str] | None = None
) -> None:
    """Write weights + config as safetensors (no pickle); atomic (temp file + rename).

    The same model and metadata always give the same bytes (see :func:`_canonical`).
    """
    from safetensors.torch import save

    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    reserved = {CONFIG_KEY, FORMAT_KEY} & set(meta)
    if reserved:
        raise ConfigError(f"metadata keys {sorted(reserved)} are reserved for mimviewer")
    meta[CONFIG_KEY] = model.config.to_json()
    meta[FORMAT_KEY] = FORMAT_VERSION
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).write_bytes(_canonical(save(tensors, metadata=meta)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _canonical(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order.

    safetensors writes metadata in hash-map order, which changes from run to run; sorting
    makes files reproducible (checksums of bundled models). Tensor data is untouched, and
    the header is padded with spaces so the data stays 8-byte aligned, as the format asks.
    """
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + length :]


def describe_checkpoint(path: str | Path, *, channels: int | None = None) -> str:
    """A few lines for ``mimviewer info``: format, architecture, config, parameter count."""
    loaded = load_checkpoint(path, channels=channels)
    cfg = loaded.config
    params = sum(p.numel() for p in loaded.model.parameters())
    if loaded.frame_size_fixed:
        size = f"{cfg.height}x{cfg.width} (fixed by the weights)"
    elif loaded.format == "mimviewer":
        size = f"{cfg.height}x{cfg.width} as saved; any multiple of the patch size runs"
    else:
        size = "any multiple of the patch size (taken from the input)"
    lines = [
        f"file:         {loaded.path}",
        f"format:       {loaded.format}",
        f"architecture: {cfg.arch} ({model_entry(cfg.arch).description})",
        f"layers:       {cfg.num_layers}, hidden {','.join(str(n) for n in cfg.num_hidden)}",
        f"filter:       {cfg.filter_size}x{cfg.filter_size}, stride {cfg.stride}",
        f"patch:        {cfg.patch_size} ({cfg.channels} channel(s) -> {cfg.patch_channels} per patch)",
        f"layer norm:   {'yes' if cfg.layer_norm else 'no'}",
        f"frame size:   {size}",
        f"context:      pre {cfg.pre}, aft {cfg.aft}, units {cfg.units}",
        f"parameters:   {params:,}",
    ]
    if cfg.options:
        lines.append(f"options:      {json.dumps(cfg.options, sort_keys=True)}")
    for k, v in sorted(loaded.metadata.items()):
        lines.append(f"meta {k}: {v}")
    return "\n".join(lines)
