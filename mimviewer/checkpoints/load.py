"""Loading a checkpoint of any flavour into a model ready to run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mimviewer import checkpoint_guard as guard
from mimviewer.checkpoints.formats import read_file
from mimviewer.checkpoints.infer import FixedFrameSizeError, describe_keys, resolve_config
from mimviewer.checkpoints.openstl import read_config_file
from mimviewer.errors import CheckpointError
from mimviewer.nets import ModelConfig, RecurrentModel, create_model


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
        problems.append(f"missing keys: {describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {describe_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {describe_keys(mismatched, 3)}")
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
    raw = read_file(path)
    stated: dict[str, Any] = dict(raw.stated)
    if config_file is not None:
        stated.update(read_config_file(config_file))
    if channels is not None:  # a hint: the file's or config file's own statement wins
        stated.setdefault("channels", int(channels))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if frame_size is None and "height" in overrides and "width" in overrides:
        # A stated frame size is checked like the input's: weights that fix another one say so.
        frame_size = (int(overrides.pop("height")), int(overrides.pop("width")))
    if "options" in overrides:  # an option flag (e.g. --peephole) adds to the file's options
        overrides["options"] = {**stated.get("options", {}), **overrides["options"]}
    stated.update(overrides)
    config, fixed = resolve_config(
        path, raw.state_dict, stated, infer=raw.format != "mimviewer", frame_size=frame_size
    )
    guard.check_against_model(path, config, raw.state_dict, create_model, load_weights)  # before allocating
    model = create_model(config)
    load_weights(path, model, raw.state_dict)
    model.to(device).eval()
    return LoadedCheckpoint(model, config, raw.format, path, dict(raw.metadata), fixed)


def load_for_input(
    path: str | Path, *, channels: int, frame_size: tuple[int, int], **options: Any
) -> LoadedCheckpoint:
    """Load a checkpoint for an input of ``channels`` x ``frame_size`` frames: at the input's frame
    size unless the weights fix another one (then the input is fitted to the model, as by ``view``)."""
    try:
        return load_checkpoint(path, channels=channels, frame_size=frame_size, **options)
    except FixedFrameSizeError:
        return load_checkpoint(path, channels=channels, **options)
