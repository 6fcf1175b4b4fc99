"""A run folder's resume point: train_state.pt read safely and checked against model.safetensors.

``train`` writes two files per checkpoint, each renamed into place on its own: the weights
(``model.safetensors``, the run's result) and the training state (``train_state.pt``). A
kill between the two renames leaves them at different steps. So the state is
self-sufficient: it carries the weights of its own step (``model``) and a stamp
(``step``) that model.safetensors also carries (``train_steps`` in its metadata).
Resuming reads the weights from the state, so a newer or older model.safetensors never
mixes in; when the stamps differ, the caller is told which file is ahead.

A state written before the stamp existed has no ``model``: it resumes only when both
files are at the same step, else it is refused.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mimviewer import checkpoint_guard as guard
from mimviewer.errors import CheckpointError, MimviewerError
from mimviewer.limits import shorten

STATE_FILE = "train_state.pt"
MODEL_FILE = "model.safetensors"


@dataclass
class ResumePoint:
    step: int
    state: dict[str, Any]  # optimizer, mask_rng, losses, wall_s (as train.py wrote them)
    weights: dict[str, torch.Tensor] | None  # the state's own weights (None in old states)
    note: str  # what was done to make the pair consistent, or ""


def read_state(path: Path) -> dict[str, Any]:
    """train_state.pt through the weights-only unpickler, its structure checked (one line on error)."""
    is_zip = guard.check_zip_pickle(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4": not the user's to fix
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except PermissionError as exc:
        raise guard.os_error(path, exc, MimviewerError) from None
    except Exception as exc:  # the unpickler fails in many ways on a truncated or hostile file
        text = str(exc).strip().splitlines()
        detail = shorten(text[0] if text else type(exc).__name__, 100)
        raise MimviewerError(
            f"{path}: not a readable training state: truncated, corrupt or asking to run code ({detail})"
        ) from None
    if not isinstance(state, Mapping):
        raise MimviewerError(f"{path}: not a training state (holds a {type(state).__name__})")
    missing = {"step", "optimizer", "mask_rng", "losses", "wall_s"} - set(state)
    if missing:
        raise MimviewerError(f"{path}: not a training state (no {', '.join(sorted(missing))})")
    step, losses, wall = state["step"], state["losses"], state["wall_s"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise MimviewerError(f"{path}: its step is {shorten(step)}, not a count of steps")
    if not isinstance(losses, list) or len(losses) != step:
        raise MimviewerError(f"{path}: its loss history does not have one value per step ({step})")
    if not isinstance(wall, int | float) or not math.isfinite(wall):
        raise MimviewerError(f"{path}: its wall time is {shorten(wall)}, not a number of seconds")
    rng = state["mask_rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        raise MimviewerError(f"{path}: its random-generator state is not a byte tensor")
    if not isinstance(state["optimizer"], Mapping):
        raise MimviewerError(f"{path}: its optimizer state is not a dict")
    weights = state.get("model")
    if weights is not None:
        if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise MimviewerError(f"{path}: its weights are not a dict of tensors")
        guard.check_tensor_storage(path, weights)
    return dict(state)


def model_step(path: Path) -> int | None:
    """The ``train_steps`` stamp in model.safetensors' metadata (None when absent)."""
    from safetensors import SafetensorError, safe_open

    header = guard.check_safetensors_header(path)
    stamp = header.get("__metadata__", {}).get("train_steps")
    if stamp is None:
        try:
            with safe_open(str(path), framework="pt") as f:
                stamp = (f.metadata() or {}).get("train_steps")
        except (SafetensorError, OSError):
            raise CheckpointError(f"{path}: corrupt safetensors file") from None
    try:
        return int(stamp) if stamp is not None else None
    except ValueError:
        raise CheckpointError(f"{path}: its train_steps stamp {shorten(stamp)} is not a number") from None


def resume_point(run_dir: Path) -> ResumePoint:
    """The consistent state to continue from, or a MimviewerError saying why there is none."""
    state_path, model_path = run_dir / STATE_FILE, run_dir / MODEL_FILE
    if not state_path.exists():
        raise MimviewerError(f"{run_dir}: no {STATE_FILE} to resume from")
    state = read_state(state_path)
    step = int(state["step"])
    weights = state.pop("model", None)
    stamp = model_step(model_path) if model_path.exists() else None
    note = ""
    if weights is None:  # a state from before the stamp: only an equal pair is safe
        if stamp != step:
            raise MimviewerError(
                f"{run_dir}: {MODEL_FILE} is at step {stamp} but {STATE_FILE} at step {step} "
                "(a run interrupted between its two writes); they cannot be resumed together"
            )
    elif stamp != step:
        note = (
            f"{MODEL_FILE} (step {stamp}) and {STATE_FILE} (step {step}) were written at different steps "
            f"(interrupted between the two writes): resuming from step {step} with the state's own weights"
        )
    return ResumePoint(step, state, weights, note)
