"""Real files of every kind, taken apart and written back changed: material for the hostile-input suites.

Checkpoint flavours come from the OpenSTL fixtures (Lightning ``.ckpt``, the original code's
``net_param`` files, plain ``.pth`` state dicts) and our bundled safetensors, so a change is
made to a file exactly as a real one is laid out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mimviewer.checkpoints.safe_load import torch_load as _torch_load

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "openstl"
MODELS = ROOT / "models"

# (flavour, file, channels of its frames)
FLAVOURS: list[tuple[str, Path, int]] = [
    ("openstl-lightning", FIXTURES / "convlstm.ckpt", 1),
    ("openstl-lightning", FIXTURES / "mim.ckpt", 1),
    ("predrnn-original", FIXTURES / "predrnn_pp.ckpt", 1),
    ("state-dict", FIXTURES / "predrnn.pth", 1),
    ("state-dict", FIXTURES / "e3d_lstm.pth", 1),
    ("training-state", FIXTURES / "predrnn_v2.pth", 3),
    ("mimviewer", MODELS / "convlstm_digits.safetensors", 1),
    ("mimviewer", MODELS / "mim_storms.safetensors", 1),
    ("safetensors", MODELS / "predrnn_digits.safetensors", 1),
]
FLAVOUR_IDS = [f"{flavour}:{path.name}" for flavour, path, _ in FLAVOURS]


def _plain(value: Any) -> Any:
    """Hyper-parameters as plain data (the loader's stand-ins would not pickle back)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def read_weights(flavour: str, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict as the file stores it, everything else the file holds, as plain data)."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    obj = _torch_load(path)
    if flavour == "openstl-lightning":
        hyper = obj.get("hyper_parameters")
        hyper = vars(hyper) if hasattr(hyper, "__dict__") and not isinstance(hyper, dict) else hyper
        return dict(obj["state_dict"]), {"hyper_parameters": _plain(dict(hyper or {}))}
    if flavour == "predrnn-original":
        return dict(obj["net_param"]), {}
    if flavour == "training-state":  # the optimizer's tensors are not weights: left out
        return dict(obj["state_dict"]), {"epoch": obj.get("epoch", 0)}
    return dict(obj), {}


def write_weights(flavour: str, path: Path, weights: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    """Write ``weights`` (and ``extra``) back in ``flavour``'s layout."""
    if flavour in ("mimviewer", "safetensors"):
        metadata = extra if flavour == "mimviewer" else {}
        save_file({k: v.contiguous() for k, v in weights.items()}, str(path), metadata=metadata)
    elif flavour == "openstl-lightning":
        torch.save({"state_dict": weights, **extra, "pytorch-lightning_version": "2.1.0"}, path)
    elif flavour == "predrnn-original":
        torch.save({"net_param": weights}, path)
    elif flavour == "training-state":
        torch.save({"state_dict": weights, **extra, "optimizer": {"state": {}, "param_groups": []}}, path)
    else:
        torch.save(weights, path)


def rewrite(
    flavour: str, source: Path, target: Path, change: Callable[[dict[str, torch.Tensor], dict], None]
) -> Path:
    """Copy a checkpoint of ``flavour`` to ``target`` with ``change(weights, extra)`` applied."""
    weights, extra = read_weights(flavour, source)
    change(weights, extra)
    target = target.with_suffix(source.suffix)
    write_weights(flavour, target, weights, extra)
    return target


def stated_config(extra: dict[str, Any]) -> dict[str, Any]:
    """The config our safetensors carry in their metadata, as a dict (changed in place by callers)."""
    return json.loads(extra.get("mimviewer.config", "{}"))


def biggest_conv(weights: dict[str, torch.Tensor]) -> str:
    convs = (k for k, v in weights.items() if isinstance(v, torch.Tensor) and v.ndim >= 4)
    return max(convs, key=lambda k: weights[k].numel())
