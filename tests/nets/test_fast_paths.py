"""Speed-ups in the shared nets code change no result (benchmarks/bench_rollout.py measures them).

Each test runs the straightforward, unoptimised computation written out here with the
model's own weights and demands the very same numbers from the model.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mimviewer.nets import create_model, patchify, unpatchify


def plain_convlstm_rollout(model, frames, pre, aft):
    """ConvLSTM as OpenSTL runs it: both convs every step (also on the zero initial state),
    one split per conv, the gate sums taken block by block."""
    cfg = model.config
    patched = patchify(frames, cfg.patch_size)
    batch = frames.shape[0]
    h = [torch.zeros(batch, n, cfg.grid_height, cfg.grid_width) for n in cfg.num_hidden]
    c = [torch.zeros_like(z) for z in h]
    outputs = []
    y = patched[:, 0]
    for t in range(pre + aft - 1):
        x = patched[:, t] if t < pre else y
        for layer, cell in enumerate(model.cell_list):
            i_x, f_x, g_x, o_x = torch.split(cell.conv_x(x), cell.hidden, dim=1)
            i_h, f_h, g_h, o_h = torch.split(cell.conv_h(h[layer]), cell.hidden, dim=1)
            i = torch.sigmoid(i_x + i_h)
            f = torch.sigmoid(f_x + f_h)
            g = torch.tanh(g_x + g_h)
            o = torch.sigmoid(o_x + o_h)
            c[layer] = f * c[layer] + i * g
            h[layer] = o * torch.tanh(c[layer])
            x = h[layer]
        y = F.conv2d(x, model.conv_last.weight)
        outputs.append(unpatchify(y, cfg.patch_size))
    return torch.stack(outputs, 1)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_convlstm_skips_the_zero_state_conv_without_changing_a_bit(layer_norm):
    model = create_model(
        "convlstm",
        num_hidden=(5, 4),
        patch_size=2,
        height=8,
        width=12,
        channels=2,
        filter_size=3,
        layer_norm=layer_norm,
    ).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".1." in name:  # LayerNorm: a non-zero bias makes LN(conv_h(0)) != 0, so it must run
                parameter.normal_()
    frames = torch.rand(2, 6, 2, 8, 12)
    with torch.inference_mode():
        fast = model(frames, pre=4, aft=2)
        plain = plain_convlstm_rollout(model, frames, pre=4, aft=2)
    np.testing.assert_array_equal(fast.numpy(), plain.numpy())
    state = model.init_state(2, patchify(frames, 2))
    assert (state[0][0] is None) == (not layer_norm)  # the skip only where it is exact
