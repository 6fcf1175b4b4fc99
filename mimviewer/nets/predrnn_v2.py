"""PredRNN-V2 (Wang et al. 2021): PredRNN plus the memory decoupling loss.

Inference is exactly PredRNN's. Training adds a loss that pushes apart what each ST-LSTM
writes into C and into M (``delta_c = i o g``, ``delta_m = i' o g'``), seen through one
shared 1x1 ``adapter``: the mean over steps, layers, batch and channels of
``|cos(adapter(delta_c), adapter(delta_m))|``, the cosine taken over the spatial positions
(OpenSTL's ``PredRNNv2_Model``). Reverse scheduled sampling comes from the base class's
``sampling_mask`` of shape ``(B, pre+aft-2)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mimviewer.nets.config import ModelConfig
from mimviewer.nets.predrnn import PredRNN, PredRNNState
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe


@register_model(
    "predrnn_v2",
    description="PredRNN-V2: PredRNN with memory decoupling and reverse scheduled sampling",
    num_hidden=(128, 128, 128, 128),
)
class PredRNNv2(PredRNN):
    """PredRNN's cells plus a shared 1x1 adapter for the decoupling loss (training only)."""

    weights_priority = 90

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return "adapter.weight" in state_dict

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        n = config.num_hidden[0]
        self.adapter = nn.Conv2d(n, n, 1, bias=False)
        self._decoupling_terms: list[torch.Tensor] = []  # one per (step, layer) of the last rollout

    def init_state(self, batch: int, like: torch.Tensor) -> PredRNNState:
        self._decoupling_terms = []
        return super().init_state(batch, like)

    def decoupling(self, delta_c: torch.Tensor, delta_m: torch.Tensor) -> torch.Tensor:
        """Mean over batch and channels of |cosine| between the adapted C and M increments."""
        c = self.adapter(delta_c).flatten(2)  # (B, hidden, H'*W')
        m = self.adapter(delta_m).flatten(2)
        return F.cosine_similarity(c, m, dim=2).abs().mean()

    def step(self, x: torch.Tensor, state: PredRNNState, probe: Probe) -> tuple[torch.Tensor, PredRNNState]:
        training = torch.is_grad_enabled()  # no adapter work at all at inference
        m = state.memory
        layers = []
        for layer, cell in enumerate(self.cell_list):
            out = cell(x, *state.layers[layer], m, probe, layer)
            layers.append((out.h, out.c))
            if training:
                self._decoupling_terms.append(self.decoupling(out.delta_c, out.delta_m))
            m = out.m
            x = out.h
        return self.conv_last(x), PredRNNState(layers, m)

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The decoupling loss of the last forward pass, unweighted (the trainer applies its weight,
        OpenSTL's ``decouple_beta`` = 0.1); None when that pass ran without gradients."""
        if not self._decoupling_terms:
            return None
        return torch.stack(self._decoupling_terms).mean()
