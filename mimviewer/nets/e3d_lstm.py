"""E3D-LSTM, Eidetic 3D LSTM (Wang et al. 2019), as OpenSTL's ``E3DLSTM_Model`` and modules define it.

Every state is a short clip: ``(B, nh, L, H', W')`` with ``L = window_length`` frames. Layer 0
reads the last ``L`` input frames (zeros before the sequence starts); its 3-D convolutions
span ``temporal_filter_size`` frames without temporal padding and are resized back to ``L``
frames by nearest-neighbour interpolation (OpenSTL's ``tf_Conv3d``). The cell's memory C
recalls its own past states by attention (the "eidetic" memory) instead of a forget gate:

    R = softmax(Q K^T) K,  Q from the recall gate r, K = [C_0, ..., C_(t-1)] (C_0 = 0)
    C = LayerNorm(C_prev + R) + i o g

Options (``ModelConfig.options``), OpenSTL's values by default:
  window_length (2)         frames in every state clip
  window_stride (1)         the input clip is rebuilt every ``window_length - window_stride`` steps
  temporal_filter_size (2)  temporal extent of every 3-D kernel (OpenSTL hard-codes (2, 5, 5);
                            the spatial extent is ``filter_size``)

Faithful to OpenSTL, including three things that look like slips but that its trained
checkpoints depend on (so they are kept):
* the attention "reshapes" (B, nh, L, H', W') to (B, L*H'*W', nh) without a permute, so each
  query/key row mixes channels and positions, and the scores are not scaled by 1/sqrt(d);
* the output gate is ``sigmoid(tanh(o_x + o_h + o_c + o_m))``;
* the cell returns the global memory M it was given, not the new one, so the M carried
  between layers and steps stays at its initial zeros; the new M of each step still feeds
  the output gate and H. Probe "M" records that new M. Since conv_gm only ever sees zeros,
  its kernel gets no gradient (with layer norm only its LayerNorm bias matters); and because
  nothing is carried, each layer may have its own hidden size.
Where OpenSTL cannot run, the original E3D-LSTM code decides: with ``window_length -
window_stride > 1`` OpenSTL feeds a single frame to the 3-D convs between window rebuilds (a
shape error); the original runs the layers only on rebuild steps, and in between repeats the
output of the unchanged top layer. So do we; nothing is recorded on those steps.

Probes record clips with the window folded into channels, ``(B, nh*L, H', W')``, so the
maps are ordinary 2-D heatmaps (mean over channels and window frames).

Memory for speed: at inference (autograd off) the recall keys live in one preallocated
buffer per layer, sized for the rollout's steps (``init_rollout_state``; grown if stepped
further by hand), and
each rebuild step writes its clip's rows into it in place; the input clip is stacked into
its buffer in place too. No step concatenates, and the same buffers serve the whole rollout
(what a CUDA graph needs). With autograd on (training) the keys are concatenated as before,
since rows written in place would invalidate what backward saved. Both give the same bits
(tests/nets/test_e3d_lstm.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.nets.base import RecurrentModel
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.predrnn import memory_update
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe

DEFAULT_OPTIONS = {"window_length": 2, "window_stride": 1, "temporal_filter_size": 2}


def window_options(config: ModelConfig) -> tuple[int, int, int]:
    """(window_length, window_stride, temporal_filter_size), checked."""
    unknown = set(config.options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ConfigError(f"e3d_lstm: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULT_OPTIONS)}")
    values = {**DEFAULT_OPTIONS, **config.options}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"e3d_lstm: option {name!r} must be an integer, got {value!r}")
    length, stride, kernel = values["window_length"], values["window_stride"], values["temporal_filter_size"]
    if not 0 <= stride < length:
        raise ConfigError(
            f"e3d_lstm: window_stride must be in [0, window_length), got {stride} with window_length {length}"
        )
    if not 1 <= kernel <= length:
        raise ConfigError(
            f"e3d_lstm: temporal_filter_size must be in [1, window_length={length}] (no temporal "
            f"padding), got {kernel}"
        )
    return length, stride, kernel


class ResizedConv3d(nn.Module):
    """3-D conv whose output is resized (nearest) back to its input's (L, H', W') (OpenSTL's tf_Conv3d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int]):
        super().__init__()
        padding = (0, kernel[1] // 2, kernel[2] // 2)
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv3d(x), size=x.shape[-3:], mode="nearest")


def conv3d_block(in_channels: int, out_channels: int, config: ModelConfig) -> nn.Sequential:
    """ResizedConv3d + optional LayerNorm over (channels, L, H', W'): keys ``<name>.0.conv3d.weight``."""
    length, _, temporal = window_options(config)
    kernel = (temporal, config.filter_size, config.filter_size)
    layers: list[nn.Module] = [ResizedConv3d(in_channels, out_channels, kernel)]
    if config.layer_norm:
        layers.append(nn.LayerNorm([out_channels, length, config.grid_height, config.grid_width]))
    return nn.Sequential(*layers)


def recall(query: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T) K with OpenSTL's layout: query (B, nh, L, H', W'), history (B, K, nh)."""
    batch, hidden = query.shape[:2]
    q = query.reshape(batch, -1, hidden)  # (B, L*H'*W', nh): a reshape, not a permute (OpenSTL)
    weights = torch.softmax(torch.einsum("bxc,byc->bxy", q, history), dim=2)  # (B, L*H'*W', K)
    return torch.einsum("bxy,byc->bxc", weights, history).reshape(query.shape)


def as_history_rows(c: torch.Tensor) -> torch.Tensor:
    """(B, nh, L, H', W') -> (B, L*H'*W', nh): one clip's rows of the recall keys/values."""
    return c.reshape(c.shape[0], -1, c.shape[1])


def append_history(
    keys: torch.Tensor | None, buffer: torch.Tensor | None, rows: torch.Tensor, capacity: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Recall keys with ``rows`` appended: (keys (B, K+n, nh), the buffer that holds them).

    Autograd off: written in place into ``buffer`` (allocated for ``capacity`` rows, doubled
    when full), the keys a view of its filled part. Autograd on: ``torch.cat``, no buffer.
    """
    if torch.is_grad_enabled():
        return (rows if keys is None else torch.cat((keys, rows), 1)), None
    count = 0 if keys is None else keys.shape[1]
    needed = count + rows.shape[1]
    if buffer is None or buffer.shape[1] < needed:
        size = max(capacity, needed if buffer is None else 2 * needed)
        grown = rows.new_empty(rows.shape[0], size, rows.shape[2])
        if count:
            grown[:, :count].copy_(keys)
        buffer = grown
    buffer[:, count:needed].copy_(rows)
    return buffer[:, :needed], buffer


class Eidetic3DLSTMCell(nn.Module):
    """conv_x gives 7 blocks (i, g, r, o, i', g', f'); conv_h 4 (i, g, r, o); conv_gm(M) 4 (i', f', g', m)."""

    def __init__(self, in_channels: int, hidden: int, config: ModelConfig):
        super().__init__()
        length = window_options(config)[0]
        self.hidden = hidden
        self._norm_c_t = nn.LayerNorm([hidden, length, config.grid_height, config.grid_width])  # always on
        self.conv_x = conv3d_block(in_channels, 7 * hidden, config)
        self.conv_h = conv3d_block(hidden, 4 * hidden, config)
        self.conv_gm = conv3d_block(hidden, 4 * hidden, config)
        self.conv_new_cell = conv3d_block(hidden, hidden, config)
        self.conv_new_gm = conv3d_block(hidden, hidden, config)
        self.conv_last = ResizedConv3d(2 * hidden, hidden, (1, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        m: torch.Tensor,
        history: torch.Tensor,
        probe: Probe,
        layer: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        i_x, g_x, r_x, o_x, i_x_m, g_x_m, f_x_m = torch.split(self.conv_x(x), self.hidden, dim=1)
        i_h, g_h, r_h, o_h = torch.split(self.conv_h(h), self.hidden, dim=1)
        i_m, f_m, g_m, m_m = torch.split(self.conv_gm(m), self.hidden, dim=1)
        # eidetic memory C: recall of past C instead of a forget gate
        i = torch.sigmoid(i_x + i_h)
        r = torch.sigmoid(r_x + r_h)
        g = torch.tanh(g_x + g_h)
        recalled = recall(r, history)
        c_new = self._norm_c_t(c + recalled) + i * g
        # global memory M
        i_prime, f_prime, g_prime, _, m_new = memory_update(
            i_x_m + i_m, f_x_m + f_m, g_x_m + g_m, torch.tanh(m_m)
        )
        # output
        o = torch.sigmoid(torch.tanh(o_x + o_h + self.conv_new_cell(c_new) + self.conv_new_gm(m_new)))
        h_new = o * torch.tanh(self.conv_last(torch.cat((c_new, m_new), 1)))
        if probe.enabled:
            for name, value in (
                ("i", i),
                ("r", r),
                ("g", g),
                ("R", recalled),
                ("i'", i_prime),
                ("f'", f_prime),
                ("g'", g_prime),
                ("o", o),
                ("C", c_new),
                ("M", m_new),
                ("H", h_new),
            ):
                probe.record(layer, name, value.flatten(1, 2))  # window folded into channels
        return h_new, c_new


class E3DState(NamedTuple):
    t: int  # steps taken so far
    recent: list[torch.Tensor]  # the last window_length - 1 input frames (zeros before the start)
    window: torch.Tensor | None  # the input clip (B, p*p*C, L, H', W') of the last rebuild step
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (H, C) clips per layer
    history: list[torch.Tensor | None]  # recall keys per layer: [C_0 .. C_(t-1)] as (B, K, nh)
    memory: list[torch.Tensor]  # global memory M given to each layer (stays zero, see module doc)
    buffers: list[torch.Tensor | None]  # per layer, the preallocated storage of history (inference)
    capacity: int = 0  # recall rows each buffer is allocated for (0: the configured rollout's)


@register_model(
    "e3d_lstm",
    description="E3D-LSTM: 3-D conv LSTM over short clips with recall attention",
    num_hidden=(128, 128, 128, 128),
    options=dict(DEFAULT_OPTIONS),
)
class E3DLSTM(RecurrentModel):
    """Stacked Eidetic 3D LSTM cells; a (L, 1, 1) 3-D conv maps the top H clip to one frame."""

    layer_quantities = ("i", "r", "g", "R", "i'", "f'", "g'", "o", "C", "M", "H")
    weights_priority = 70
    first_conv_key = "cell_list.0.conv_x.0.conv3d.weight"
    hidden_conv_keys = ("cell_list.{i}.conv_h.0.conv3d.weight",)

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        first = state_dict.get(cls.first_conv_key)
        return first is not None and first.ndim == 5

    @classmethod
    def config_from_weights(cls, state_dict, **hints) -> dict:
        """The conv family's fields plus the clip length and temporal kernel of the 3-D convs."""
        fields = super().config_from_weights(state_dict, **hints)
        fields["options"] = {
            "window_length": int(state_dict["cell_list.0._norm_c_t.weight"].shape[1]),
            "temporal_filter_size": int(state_dict[cls.first_conv_key].shape[2]),
        }
        return fields

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        length, stride, _ = window_options(config)
        self.window_length = length
        self.rebuild_every = length - stride
        hidden = config.num_hidden
        self.cell_list = nn.ModuleList(
            Eidetic3DLSTMCell(config.patch_channels if i == 0 else hidden[i - 1], hidden[i], config)
            for i in range(config.num_layers)
        )
        self.conv_last = nn.Conv3d(
            hidden[-1], config.patch_channels, (length, 1, 1), stride=(length, 1, 1), bias=False
        )

    def recurrent_modules(self) -> dict[str, int]:
        return {f"cell_list.{i}.conv_h.0.conv3d": i for i in range(self.config.num_layers)}  # W_h * H_(t-1)

    def init_state(self, batch: int, like: torch.Tensor) -> E3DState:
        cfg = self.config
        clip = (self.window_length, cfg.grid_height, cfg.grid_width)
        zeros = [like.new_zeros(batch, n, *clip) for n in cfg.num_hidden]
        frame = like.new_zeros(batch, cfg.patch_channels, cfg.grid_height, cfg.grid_width)
        return E3DState(
            t=0,
            recent=[frame] * (self.window_length - 1),
            window=None,
            layers=[(z, z) for z in zeros],
            history=[None] * cfg.num_layers,
            memory=zeros,
            buffers=[None] * cfg.num_layers,
        )

    def init_rollout_state(self, batch: int, like: torch.Tensor, steps: int) -> E3DState:
        return self.init_state(batch, like)._replace(capacity=self.history_capacity(steps))

    def history_capacity(self, steps: int | None = None) -> int:
        """Recall rows per layer for a rollout of ``steps`` (default: the configured) steps: one
        clip per rebuild step."""
        cfg = self.config
        steps = cfg.pre + cfg.aft - 1 if steps is None else steps
        clips = math.ceil(steps / self.rebuild_every)
        return clips * self.window_length * cfg.grid_height * cfg.grid_width

    def step(self, x: torch.Tensor, state: E3DState, probe: Probe) -> tuple[torch.Tensor, E3DState]:
        frames = [*state.recent, x]
        recent = frames[1:]
        if state.t % self.rebuild_every != 0:  # between rebuilds the layers rest (original E3D-LSTM)
            y = self.conv_last(state.layers[-1][0]).squeeze(2)
            return y, state._replace(t=state.t + 1, recent=recent)
        if state.window is not None and not torch.is_grad_enabled():
            window = torch.stack(frames, dim=2, out=state.window)  # in place, same values
        else:
            window = torch.stack(frames, dim=2)  # (B, p*p*C, L, H', W')
        layers, history, buffers = [], [], []
        inputs = window
        for layer, cell in enumerate(self.cell_list):
            h, c = state.layers[layer]
            # C_(t-1) joins the recall keys
            past, buffer = append_history(
                state.history[layer],
                state.buffers[layer],
                as_history_rows(c),
                state.capacity or self.history_capacity(),
            )
            h, c = cell(inputs, h, c, state.memory[layer], past, probe, layer)
            layers.append((h, c))
            history.append(past)
            buffers.append(buffer)
            inputs = h
        y = self.conv_last(inputs).squeeze(2)  # (B, p*p*C, H', W')
        return y, E3DState(
            state.t + 1, recent, window, layers, history, state.memory, buffers, state.capacity
        )
