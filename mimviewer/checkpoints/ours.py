"""Our own format: weights + config as safetensors (no pickle), reproducible bytes; ``info`` text."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

from mimviewer.atomic import write_bytes
from mimviewer.checkpoints.formats import CONFIG_KEY, FORMAT_KEY, FORMAT_VERSION
from mimviewer.checkpoints.load import load_checkpoint
from mimviewer.errors import ConfigError
from mimviewer.nets import RecurrentModel, model_entry
from mimviewer.nets.variants import describe_variant


def save_checkpoint(
    path: str | Path, model: RecurrentModel, metadata: Mapping[str, str] | None = None
) -> None:
    """Write weights + config as safetensors (no pickle), through :mod:`mimviewer.atomic`.

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
    write_bytes(path, _canonical(save(tensors, metadata=meta)))


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
    if (variant := describe_variant(cfg)) is not None:
        lines.append(f"variant:      {variant}")
    for k, v in sorted(loaded.metadata.items()):
        lines.append(f"meta {k}: {v}")
    return "\n".join(lines)
