"""The checkpoint flavours: find the weights (and any stated config) in each kind of file.

* ``mimviewer`` — our safetensors file: weights + the ModelConfig JSON in its metadata;
* ``openstl-lightning`` — OpenSTL's Lightning ``.ckpt``: ``{'state_dict': {'model.<key>': ...},
  'hyper_parameters': {...}, ...}``;
* ``training-state`` — ``{'state_dict': ..., 'optimizer': ...}`` files;
* ``predrnn-original`` — the original PredRNN/MIM code's ``{'net_param': state_dict}``;
* ``state-dict`` — a raw state dict (``.pth``), keys possibly prefixed with ``module.``;
* ``safetensors`` — a safetensors file of weights without our config.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mimviewer import checkpoint_guard as guard
from mimviewer.checkpoints.openstl import openstl_fields
from mimviewer.checkpoints.safe_load import torch_load
from mimviewer.errors import CheckpointError
from mimviewer.limits import json_object

CONFIG_KEY = "mimviewer.config"  # safetensors metadata key holding the ModelConfig JSON
FORMAT_KEY = "mimviewer.format"  # safetensors metadata key marking our own files
FORMAT_VERSION = "1"


@dataclass
class RawCheckpoint:
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


def _read_safetensors(path: Path) -> RawCheckpoint:
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
        stated = json_object(
            metadata.pop(CONFIG_KEY),
            CheckpointError,
            f"{path}: the config in its metadata is not valid JSON",
            f"{path}: the config in its metadata is not a JSON object",
        )
    fmt = "mimviewer" if metadata.pop(FORMAT_KEY, None) or stated else "safetensors"
    return RawCheckpoint(fmt, tensors, stated, metadata)


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


def _read_pickled(path: Path) -> RawCheckpoint:
    obj = torch_load(path)
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
    return RawCheckpoint(fmt, _strip_prefixes(state_dict), stated, metadata)


def read_file(path: Path) -> RawCheckpoint:
    guard.check_readable(path)  # missing, folder, empty, permission denied: said as such
    if path.suffix == ".safetensors" or _is_safetensors(path):
        return _read_safetensors(path)
    return _read_pickled(path)
