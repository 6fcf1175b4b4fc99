"""Reading a convolutional recurrent model's sizes off its weights (shared by the conv family).

Each architecture declares where its tell-tale tensors live (``first_conv_key``,
``hidden_conv_keys``, ``layer_key_prefix`` on its class); this reads them: hidden sizes,
filter and patch size, layer norm, and H'/W' where a LayerNorm or peephole weight fixes them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from mimviewer.errors import ConfigError

# Weights whose last two axes are the patch grid (H', W'): LayerNorms and peepholes.
GRID_KEY = re.compile(r"(\.conv_\w+\.1\.weight|ct_weight|oc_weight|_norm_c_t\.weight|\.w_c[ifo])$")
LAYER_NORM_KEY = re.compile(r"\.conv_\w+\.1\.weight$")


def layer_indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """The layer numbers i that have weights under ``<prefix>.<i>.``."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})


def split_patch_channels(patch_channels: int, channels: int | None, patch_size: int | None) -> dict[str, int]:
    """p*p*C -> {channels, patch_size}; without a hint C is the smallest of 1, 3 that works."""
    if patch_size is not None and channels is None and patch_channels % (patch_size * patch_size) == 0:
        channels = patch_channels // (patch_size * patch_size)
    for c in (channels,) if channels is not None else (1, 3):
        p = math.isqrt(patch_channels // c) if patch_channels % c == 0 else 0
        if p * p * c == patch_channels:
            return {"channels": c, "patch_size": p}
    raise ConfigError(
        f"the first layer reads {patch_channels} channels, which is not p*p*C for "
        f"C={channels if channels is not None else '1 or 3'}; give the frame's channel count"
    )


def conv_config_fields(
    cls: Any,
    state_dict: Mapping[str, torch.Tensor],
    *,
    channels: int | None = None,
    patch_size: int | None = None,
) -> dict[str, Any]:
    """ModelConfig fields of a conv-family model ``cls``; KeyError names a tensor that is missing."""
    layers = layer_indices(state_dict, cls.layer_key_prefix)
    if not layers or cls.first_conv_key not in state_dict:
        raise KeyError(cls.first_conv_key)
    first = state_dict[cls.first_conv_key]
    fields: dict[str, Any] = {"arch": cls.arch, "filter_size": int(first.shape[-1])}
    hidden = []
    for i in layers:
        keys = [t.format(i=i) for t in cls.hidden_conv_keys]
        key = next((k for k in keys if k in state_dict), None)
        if key is None:
            raise KeyError(keys[0])
        hidden.append(int(state_dict[key].shape[1]))
    fields["num_hidden"] = tuple(hidden)
    fields.update(split_patch_channels(int(first.shape[1]), channels, patch_size))
    fields["layer_norm"] = any(LAYER_NORM_KEY.search(k) for k in state_dict)
    grid = next(
        (v.shape[-2:] for k, v in sorted(state_dict.items()) if GRID_KEY.search(k) and v.ndim >= 3), None
    )
    if grid is not None:
        fields.update(height=int(grid[0]) * fields["patch_size"], width=int(grid[1]) * fields["patch_size"])
    return fields
