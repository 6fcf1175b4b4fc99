"""Attribution (Captum over the rollout) and memory-path gradient norms, for every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mimviewer.attribution import (
    Attribution,
    AttributionError,
    AttributionRequest,
    Region,
    attribute,
    blurred,
    iter_attribution,
    make_baseline,
    memory_paths,
)
from mimviewer.nets import ModelConfig, create_model, list_models
from mimviewer.nets.base import RecurrentModel
from mimviewer.paths import bundled_models_dir
from mimviewer.trace import Probe

PRE = 4
H, W = 6, 5


class LinearToy(RecurrentModel):
    """s_t = d * s_(t-1) + x_t, output w o s_t: every gradient is known in closed form."""

    def __init__(self, decay: float):
        super().__init__(
            ModelConfig(
                arch="linear_toy",
                num_hidden=(1,),
                filter_size=1,
                patch_size=1,
                height=H,
                width=W,
                pre=PRE,
                aft=2,
            )
        )
        self.decay = decay
        self.weight = nn.Parameter(torch.randn(1, 1, H, W, dtype=torch.float64))

    def init_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, 1, H, W)

    def step(self, x: torch.Tensor, state: torch.Tensor, probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.decay * state + x
        probe.record(0, "C", s)
        return self.weight * s, s


@pytest.fixture
def toy() -> tuple[LinearToy, torch.Tensor, np.ndarray]:
    model = LinearToy(decay=0.7)
    context = torch.rand(1, PRE, 1, H, W, dtype=torch.float64) + 0.1
    mask = np.zeros((H, W), bool)
    mask[1:4, 2:5] = True
    return model, context, mask


def expected_gradient(model: LinearToy, mask: np.ndarray, frame: int) -> np.ndarray:
    """d(region sum of frame K)/d(x_t) in closed form, (PRE, 1, H, W)."""
    w = model.weight.detach().numpy()[0]  # (1, H, W)
    d = model.decay
    # frame PRE: w o S; frame PRE+1: the fed-back output adds w o S to the state: w o (d + w) o S
    gain = w if frame == PRE else w * (d + w)
    return np.stack([mask * gain * d ** (PRE - 1 - t) for t in range(PRE)])


@pytest.mark.parametrize("frame", [PRE, PRE + 1])
def test_linear_toy_attributions_are_its_weights(toy, frame: int) -> None:
    model, context, mask = toy
    grad = expected_gradient(model, mask, frame)
    x = context[0].numpy()
    saliency = attribute(model, context, AttributionRequest(frame, mask, "saliency", memory=False))
    ixg = attribute(model, context, AttributionRequest(frame, mask, "ixg", memory=False))
    ig = attribute(
        model, context, AttributionRequest(frame, mask, "ig", "zeros", ig_steps=3, ig_chunk=2, memory=False)
    )
    # float64 model: exact up to a few ulps of the sums (the maps are stored as float32)
    np.testing.assert_allclose(saliency.maps, grad, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ixg.maps, grad * x, rtol=1e-6, atol=1e-7)
    # a linear model's gradient is constant along the path: integrated gradients = gradient x input
    np.testing.assert_allclose(ig.maps, grad * x, rtol=1e-6, atol=1e-7)
    assert ig.completeness_gap == pytest.approx(0.0, abs=1e-5)
    assert saliency.maps[:, :, ~mask].max() == 0.0  # nothing outside the region's pixels
    np.testing.assert_allclose(ixg.frame_totals, (grad * x).reshape(PRE, -1).sum(1), rtol=1e-6)


def test_linear_toy_memory_gradient_norms(toy) -> None:
    model, context, mask = toy
    memory = memory_paths(model, context, PRE, mask)
    w = model.weight.detach().numpy()[0, 0]
    # d(region)/d(s_t) = d^(PRE-1-t) w o mask for t <= PRE-1; later steps are not computed
    expected = [np.linalg.norm(w * mask) * model.decay ** (PRE - 1 - t) for t in range(PRE)]
    c = memory.paths.index("C")
    np.testing.assert_allclose(memory.norms[:PRE, 0, c], expected, rtol=1e-12)
    assert np.isnan(memory.norms[PRE:, 0, c]).all()
    assert memory.row_matrix()[0] == ["layer 0 C"]
    np.testing.assert_allclose(memory.shares()[:PRE, 0, c], 1.0)


def test_integrated_gradients_completeness_on_a_bundled_model() -> None:
    """sum(attributions) = F(input) - F(baseline) up to the quadrature error, float64 (CPU-independent).

    Measured on this model, region and data (float64; rounding differences between CPUs are
    ~1e-15, far below), relative gap |gap| / |F(x) - F(0)| of the zeros baseline: 8 steps
    1.6e-2, 16 steps 2.8e-3, 32 steps 7.3e-5, 64 steps 1.3e-7 - it falls as the steps grow, as
    a quadrature error does. 1e-3 at 32 steps leaves 13x room and still catches a segment
    dropped or counted twice (an error of 1/8 of the integral).
    """
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.data.synthetic import radar_storms
    from mimviewer.data.units import dbz_to_unit

    model = load_checkpoint(bundled_models_dir() / "predrnn_storms.safetensors").model.double()
    frames = dbz_to_unit(radar_storms(1, length=12, size=64, seed=0)[0]).astype(np.float64)
    mask = Region(20, 20, 40, 40).mask(64, 64)
    request = AttributionRequest(12, mask, "ig", "zeros", ig_steps=32, ig_chunk=4, memory=False)
    result = attribute(model, frames[:10], request)
    change = result.target - result.baseline_target
    assert abs(change) > 1.0  # the region holds signal: the check is not 0 = 0
    assert abs(result.completeness_gap) <= 1e-3 * abs(change)


def tiny(arch: str) -> RecurrentModel:
    return create_model(arch, num_hidden=(4, 4), filter_size=3, patch_size=2, height=8, width=6, pre=3, aft=2)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_attributes_and_reports_memory_paths(arch: str) -> None:
    model = tiny(arch).train()
    requires = [p.requires_grad for p in model.parameters()]
    context = torch.rand(1, 3, 1, 8, 6)
    mask = np.zeros((8, 6), bool)
    mask[2:6, 1:4] = True
    frame = 4  # the second predicted frame: the output of step 3, through one fed-back prediction
    for method in ("saliency", "ixg", "ig"):
        request = AttributionRequest(
            frame, mask, method, "blur", ig_steps=2, ig_chunk=1, memory=method == "ig"
        )
        result = attribute(model, context, request)
        assert result.maps.shape == (3, 1, 8, 6)
        assert np.isfinite(result.maps).all() and np.abs(result.maps).max() > 0
    memory = result.memory
    assert memory.norms.shape == (4, 2, len(memory.paths))
    c = memory.paths.index("C")
    assert np.isfinite(memory.norms[frame - 1, -1, c]) and memory.norms[frame - 1, -1, c] > 0
    if arch == "mim":  # MIM-N computes nothing at step 0; its memory N and MIM-S's S exist later
        n, s = memory.paths.index("N"), memory.paths.index("S")
        assert np.isnan(memory.norms[0, 1, n]) and memory.norms[1, 1, n] > 0 and memory.norms[1, 1, s] > 0
        assert ("layer 1 N" in memory.row_matrix()[0]) and ("layer 1 S" in memory.row_matrix()[0])
    # eval mode and frozen weights only for the duration
    assert model.training and [p.requires_grad for p in model.parameters()] == requires


def test_cancel_between_pieces_restores_the_model(toy) -> None:
    model, context, mask = toy
    model.train()
    generator = iter_attribution(model, context, AttributionRequest(PRE, mask, "ig", ig_steps=8, ig_chunk=2))
    first = next(generator)
    assert (first.done, first.total) == (1, 1 + 4 + 1)
    assert not model.training  # eval during the work
    generator.close()  # what a GUI worker's Cancel does: stop resuming
    assert model.training and model.weight.requires_grad


def test_baselines() -> None:
    context = torch.rand(1, 3, 1, 16, 16, dtype=torch.float64)
    assert torch.equal(make_baseline(context, "zeros"), torch.zeros_like(context))
    last = make_baseline(context, "last")
    assert all(torch.equal(last[:, t], context[:, -1]) for t in range(3))
    blur = make_baseline(context, "blur", 2.0)
    assert blur.shape == context.shape
    assert blur.std() < context.std()  # smoother
    constant = torch.full_like(context, 0.3)
    torch.testing.assert_close(blurred(constant, 2.0), constant)  # a blur keeps a constant


def test_bad_requests_name_the_problem(toy) -> None:
    model, context, mask = toy
    with pytest.raises(AttributionError, match="frame 0 is never predicted"):
        attribute(model, context, AttributionRequest(0, mask, "ixg"))
    with pytest.raises(AttributionError, match="empty"):
        attribute(model, context, AttributionRequest(PRE, np.zeros((H, W), bool), "ixg"))
    with pytest.raises(AttributionError, match="unknown attribution method"):
        attribute(model, context, AttributionRequest(PRE, mask, "lime"))
    with pytest.raises(AttributionError, match="outside"):
        Region(0, 0, W + 1, 2).mask(H, W)
    with pytest.raises(AttributionError, match="x0,y0,x1,y1"):
        Region.parse("1,2,3")


def test_attribution_file_round_trip(toy, tmp_path) -> None:
    model, context, mask = toy
    result = attribute(model, context, AttributionRequest(PRE, mask, "ig", "last", ig_steps=2))
    result.meta["checkpoint"] = "toy"
    back = Attribution.load(result.save(tmp_path / "a.npz"))
    np.testing.assert_array_equal(back.maps, result.maps)
    np.testing.assert_array_equal(back.mask, result.mask)
    np.testing.assert_array_equal(back.memory.norms, result.memory.norms)
    assert (back.method, back.baseline, back.frame, back.target, back.baseline_target, back.meta) == (
        "ig",
        "last",
        PRE,
        result.target,
        result.baseline_target,
        {"checkpoint": "toy"},
    )


def test_attribution_on_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    model = tiny("predrnn").double()
    context = torch.rand(1, 3, 1, 8, 6, dtype=torch.float64)
    mask = np.ones((8, 6), bool)
    request = AttributionRequest(4, mask, "ig", "zeros", ig_steps=4)
    cpu = attribute(model, context, request)
    gpu = attribute(model.cuda(), context, request)
    np.testing.assert_allclose(gpu.maps, cpu.maps, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gpu.memory.norms, cpu.memory.norms, rtol=1e-6)
