"""Pieces shared by the by-hand equation checks, written from DESIGN.md and not from the cells' code."""

import torch
import torch.nn.functional as F

from mimviewer.trace import Probe


class DictProbe(Probe):
    """Keeps every recorded tensor of one call, by name (for one-step checks of a cell)."""

    enabled = True

    def __init__(self):
        self.values: dict[str, torch.Tensor] = {}

    def record(self, layer, name, value):
        self.values[name] = value


def conv(x: torch.Tensor, block: torch.nn.Sequential, layer_norm: bool = False) -> torch.Tensor:
    """DESIGN.md: conv without bias, 'same' padding, optional LayerNorm over (channels, H', W')."""
    weight = block[0].weight
    y = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    return F.layer_norm(y, y.shape[1:], block[1].weight, block[1].bias) if layer_norm else y


def loud(module: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (peepholes start at zero, LayerNorm at (1, 0)), so no term hides."""
    with torch.no_grad():
        for param in module.parameters():
            param.uniform_(-0.6, 0.6)
    return module
