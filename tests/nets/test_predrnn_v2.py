"""PredRNN-V2: predicts like PredRNN, trains with a decoupling loss and reverse scheduled sampling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mimviewer.inference import rollout
from mimviewer.nets import create_model
from mimviewer.trace import ProbeSpec, TraceRecorder

CONFIG = dict(num_hidden=(4, 4), patch_size=2, channels=1, height=8, width=12, filter_size=3)


def tiny(**changes):
    return create_model("predrnn_v2", **{**CONFIG, **changes})


def test_inference_is_predrnn_with_the_same_weights():
    v2 = tiny(layer_norm=True)
    v1 = create_model("predrnn", **CONFIG, layer_norm=True)
    weights = {k: v for k, v in v2.state_dict().items() if not k.startswith("adapter.")}
    v1.load_state_dict(weights, strict=True)
    frames = torch.rand(2, 6, 1, 8, 12)
    a = rollout(v2, frames, pre=3, aft=3, probes=ProbeSpec())
    b = rollout(v1, frames, pre=3, aft=3, probes=ProbeSpec())
    np.testing.assert_array_equal(a.prediction, b.prediction)
    np.testing.assert_array_equal(a.trace.map(1, "f'"), b.trace.map(1, "f'"))


def test_decoupling_loss_costs_nothing_at_inference():
    model = tiny()
    calls = []
    model.adapter.register_forward_hook(lambda *args: calls.append(1))
    rollout(model, torch.rand(1, 5, 1, 8, 12), pre=3, aft=2)
    with torch.no_grad():
        model(torch.rand(1, 5, 1, 8, 12), pre=3, aft=2)
    assert calls == []
    assert model.auxiliary_loss() is None


def test_decoupling_loss_in_training_is_the_mean_absolute_cosine_of_the_increments():
    model = tiny()
    model.train()
    frames = torch.rand(2, 5, 1, 8, 12)
    recorder = TraceRecorder(ProbeSpec(quantities=frozenset({"i", "g", "i'", "g'"}), keep_raw=True), steps=4)
    outputs = model(frames, pre=3, aft=2, probe=recorder)
    raw = {k: torch.from_numpy(v) for k, v in recorder.finish(3, 2).raw.items()}
    loss = model.auxiliary_loss()
    assert torch.isfinite(loss) and 0 < loss.item() <= 1
    # by hand (PredRNN-V2 paper, eq. 6): |cos| over space of adapter(i o g) and adapter(i' o g'),
    # averaged over batch, channels, layers and steps
    terms = []
    with torch.no_grad():
        for t in range(4):
            for layer in range(2):
                delta_c = raw[f"{layer}/i"][t] * raw[f"{layer}/g"][t]
                delta_m = raw[f"{layer}/i'"][t] * raw[f"{layer}/g'"][t]
                a_c = F.normalize(F.conv2d(delta_c, model.adapter.weight).flatten(2), dim=2)
                a_m = F.normalize(F.conv2d(delta_m, model.adapter.weight).flatten(2), dim=2)
                terms.append((a_c * a_m).sum(2).abs().mean())
    torch.testing.assert_close(loss.detach(), torch.stack(terms).mean(), atol=1e-6, rtol=1e-5)
    # it trains: the MSE plus the decoupling term reaches the shared adapter
    (F.mse_loss(outputs, frames[:, 1:]) + 0.1 * loss).backward()
    assert model.adapter.weight.grad.abs().sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_each_forward_pass_starts_a_fresh_decoupling_loss():
    model = tiny()
    frames = torch.rand(1, 5, 1, 8, 12)
    model(frames, pre=3, aft=2)
    first = model.auxiliary_loss().detach()
    model(frames, pre=3, aft=2)
    torch.testing.assert_close(model.auxiliary_loss().detach(), first)  # not accumulated across passes


@pytest.mark.parametrize("truth", [1.0, 0.0])
def test_reverse_scheduled_sampling_mixes_true_frames_into_every_step(truth):
    model = tiny()
    frames = torch.rand(2, 6, 1, 8, 12)
    pre, aft = 3, 3
    steps = pre + aft - 1
    mask = torch.full((2, steps - 1), truth)  # (B, pre+aft-2): one flag per step t >= 1
    mask[1] = 1.0 - truth  # the second sample gets the opposite flags
    with torch.no_grad():
        mixed = model(frames, pre, aft, sampling_mask=mask)
        always_true = model(frames, pre=steps, aft=1)  # every step reads the true frame
        always_own = model(frames, pre=1, aft=steps)  # every step after the first reads its own output
    first, second = (always_true, always_own) if truth else (always_own, always_true)
    torch.testing.assert_close(mixed[0], first[0])
    torch.testing.assert_close(mixed[1], second[1])
    assert not torch.allclose(always_true, always_own)
