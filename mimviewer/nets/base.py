"""What every architecture shares: patchify, the rollout loop and the probe hook.

A model implements two methods:

* ``init_state(batch, like)`` -> any structure of zero tensors (allocated once per rollout);
  a cell may hold ``None`` for a zero tensor whose work it can skip exactly (ConvLSTM's H);
* ``step(x, state, probe)`` -> ``(y, state)`` where ``x`` is the patchified input frame
  ``(B, p*p*C, H', W')`` and ``y`` the patchified prediction of the next frame.

Everything else (choosing true frames vs own outputs, scheduled sampling, patchify) lives
here once, so every architecture rolls out the same way (DESIGN.md, "Models").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from mimviewer.errors import ShapeError
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.weights import conv_config_fields
from mimviewer.trace import NO_PROBE, Probe


def patchify(frames: torch.Tensor, p: int) -> torch.Tensor:
    """(..., C, H, W) -> (..., p*p*C, H/p, W/p), channel index (dy*p + dx)*C + c (OpenSTL)."""
    *lead, c, h, w = frames.shape
    x = frames.reshape(*lead, c, h // p, p, w // p, p)  # (..., C, H', dy, W', dx)
    n = len(lead)
    # -> (..., dy, dx, C, H', W')
    x = x.permute(*range(n), n + 2, n + 4, n, n + 1, n + 3)
    return x.reshape(*lead, p * p * c, h // p, w // p)


def unpatchify(patches: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (..., p*p*C, H', W') -> (..., C, H'*p, W'*p)."""
    *lead, pc, hp, wp = patches.shape
    c = pc // (p * p)
    x = patches.reshape(*lead, p, p, c, hp, wp)  # (..., dy, dx, C, H', W')
    n = len(lead)
    # -> (..., C, H', dy, W', dx)
    x = x.permute(*range(n), n + 2, n + 3, n, n + 4, n + 1)
    return x.reshape(*lead, c, hp * p, wp * p)


def conv_block(
    in_channels: int, out_channels: int, kernel: int, config: ModelConfig, *, norm: bool | None = None
) -> nn.Sequential:
    """Conv without bias, 'same' padding, optional LayerNorm over (channels, H', W').

    Returned as ``nn.Sequential`` so that weights are named ``<name>.0.weight`` (and the
    norm ``<name>.1.weight``), exactly as in OpenSTL's checkpoints.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=config.stride, padding=kernel // 2, bias=False)
    ]
    if config.layer_norm if norm is None else norm:
        layers.append(nn.LayerNorm([out_channels, config.grid_height, config.grid_width]))
    return nn.Sequential(*layers)


class RecurrentModel(nn.Module):
    """Base of every architecture; see the module docstring for the contract."""

    arch: ClassVar[str] = ""
    # Quantities each layer records, in display order (subclasses override; may vary per layer).
    layer_quantities: ClassVar[tuple[str, ...]] = ()
    # Kinds that differ from trace.quantity_kind's reading of the name (e.g. a tanh "o" is a state).
    quantity_kinds: ClassVar[dict[str, str]] = {}
    # Regexes of checkpoint keys that reference implementations store but never use
    # (e.g. OpenSTL's ConvLSTM cells carry an unused conv_o); the loader drops them.
    unused_checkpoint_keys: ClassVar[tuple[str, ...]] = ()

    # -- what this architecture's checkpoints look like (timm's checkpoint_filter_fn) ----------
    # detect_arch asks architectures with a higher priority first (their key sets are more specific).
    weights_priority: ClassVar[int] = 0
    layer_key_prefix: ClassVar[str] = "cell_list"  # layer i's weights are under "<prefix>.<i>."
    # The conv that reads the patched frame: in_channels = p*p*C, kernel = filter size.
    first_conv_key: ClassVar[str] = "cell_list.0.conv_x.0.weight"
    # Convs whose in_channels is layer i's hidden size (the first one present counts).
    hidden_conv_keys: ClassVar[tuple[str, ...]] = ("cell_list.{i}.conv_h.0.weight",)

    @classmethod
    def matches_weights(cls, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """Whether these weights are this architecture's (key names and shapes)."""
        return False

    @classmethod
    def config_from_weights(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        *,
        channels: int | None = None,
        patch_size: int | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """ModelConfig fields the weights fix (KeyError: a tensor this architecture needs is missing).

        ``channels`` / ``patch_size`` tell p from C in p*p*C; ``frame_size`` is the input's."""
        return conv_config_fields(cls, state_dict, channels=channels, patch_size=patch_size)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    def zero_maps(self, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        """One zero map (B, hidden_l, H', W') per layer, with ``like``'s device and dtype."""
        cfg = self.config
        return [like.new_zeros(batch, n, cfg.grid_height, cfg.grid_width) for n in cfg.num_hidden]

    # -- to implement -------------------------------------------------------------------
    def init_state(self, batch: int, like: torch.Tensor) -> Any:
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: Any, probe: Probe) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def init_rollout_state(self, batch: int, like: torch.Tensor, steps: int) -> Any:
        """The state for a rollout of ``steps`` steps; a model whose state grows with the steps
        (E3D-LSTM's recall history) sizes its buffers here, once. Default: :meth:`init_state`."""
        return self.init_state(batch, like)

    def quantities(self, layer: int) -> tuple[str, ...]:
        """Names this model records for ``layer`` (plus "dH", derived from "H" by the recorder)."""
        return self.layer_quantities

    def recurrent_modules(self) -> dict[str, int]:
        """The recurrent products: bias-free linear modules (by qualified name, with their layer)
        that read a state the same cell produced at the previous step (H_(t-1), C_(t-1), ...).

        Delta inference (mimviewer/nets/delta.py) computes exactly these incrementally.
        """
        return {}

    # -- shared rollout -------------------------------------------------------------------
    def check_frames(self, frames: torch.Tensor, needed: int) -> None:
        cfg = self.config
        if frames.ndim != 5:
            raise ShapeError(f"expected frames (B, T, C, H, W), got shape {tuple(frames.shape)}")
        _, t, c, h, w = frames.shape
        if (c, h, w) != (cfg.channels, cfg.height, cfg.width):
            raise ShapeError(
                f"frames are (C, H, W) = {(c, h, w)} but the model expects "
                f"{(cfg.channels, cfg.height, cfg.width)}"
            )
        if t < needed:
            raise ShapeError(f"need at least {needed} frames, got {t}")

    def generate(
        self,
        frames: torch.Tensor,
        pre: int | None = None,
        aft: int | None = None,
        *,
        probe: Probe = NO_PROBE,
        sampling_mask: torch.Tensor | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the output of every step t = 0 .. pre+aft-2 as a frame ``(B, C, H, W)``.

        Output t predicts frame t+1, so the last ``aft`` outputs are the prediction.
        Steps t < pre read true frame t, later ones the model's own previous output.
        ``sampling_mask`` (training only) mixes true frames back in, as in PredRNN's
        scheduled sampling: shape ``(B, aft-1)`` applies to steps t >= pre, shape
        ``(B, pre+aft-2)`` to every step t >= 1 (reverse scheduled sampling).
        """
        cfg = self.config
        pre = cfg.pre if pre is None else pre
        aft = cfg.aft if aft is None else aft
        steps = pre + aft - 1
        self.check_frames(frames, steps + 1 if sampling_mask is not None else pre)
        p = cfg.patch_size
        patched = patchify(frames, p)  # (B, T, p*p*C, H', W')
        state = self.init_rollout_state(frames.shape[0], patched, steps)
        offset = None
        if sampling_mask is not None:
            offset = {aft - 1: pre, steps - 1: 1}.get(sampling_mask.shape[1])
            if offset is None:
                raise ShapeError(
                    f"sampling mask must be (B, {aft - 1}) or (B, {steps - 1}), "
                    f"got {tuple(sampling_mask.shape)}"
                )
        y = patched[:, 0]
        for t in range(steps):
            if offset is not None and t >= offset:
                m = sampling_mask[:, t - offset].view(-1, 1, 1, 1).to(y.dtype)
                x = m * patched[:, t] + (1 - m) * y
            elif t < pre:
                x = patched[:, t]
            else:
                x = y
            probe.begin_step(t)
            y, state = self.step(x, state, probe)
            yield unpatchify(y, p)

    def forward(
        self,
        frames: torch.Tensor,
        pre: int | None = None,
        aft: int | None = None,
        *,
        probe: Probe = NO_PROBE,
        sampling_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """All step outputs stacked: ``(B, pre+aft-1, C, H, W)``."""
        return torch.stack(list(self.generate(frames, pre, aft, probe=probe, sampling_mask=sampling_mask)), 1)

    def auxiliary_loss(self) -> torch.Tensor | None:
        """Extra training loss from the last forward pass (PredRNN-V2's decoupling loss)."""
        return None
