"""Delta inference: a hardware researcher asks what skipping small Δh would save and cost.

Every registered architecture: eps = 0 equals the exact rollout (float64, so to the last
rounding on any CPU), eps > 0 reports exactly the skipped entries a direct count finds, and
the model comes back unchanged. Then `mimviewer delta` and `predict --delta-eps` from the CLI.
"""

import csv

import cv2
import numpy as np
import pytest
import torch

from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.delta import CURVE_COLUMNS, delta_rollout, exact_rollout
from mimviewer.errors import ConfigError
from mimviewer.nets import create_model, list_models
from mimviewer.nets.delta import DeltaModule, delta_mode


def tiny(arch: str, dtype=torch.float64):
    hidden = (4, 4, 4) if arch in ("predrnn_pp", "mim", "mim_paper") else (4, 4)
    model = create_model(arch, num_hidden=hidden, filter_size=3, patch_size=2, height=8, width=12, channels=1)
    with torch.no_grad():  # loud weights, so that every product matters
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model.to(dtype).eval()


def smooth_frames(dtype=torch.float64) -> torch.Tensor:
    """A blob drifting slowly: consecutive hidden states differ little, as in real video."""
    t = torch.arange(7, dtype=dtype)[:, None, None]
    y, x = torch.meshgrid(torch.arange(8, dtype=dtype), torch.arange(12, dtype=dtype), indexing="ij")
    blob = torch.exp(-((x - 3 - 0.5 * t) ** 2 + (y - 4) ** 2) / 6)
    return torch.stack([blob, 0.5 * blob.flip(-1)])[:, :, None]  # (2, 7, 1, 8, 12)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_declares_bias_free_recurrent_products(arch):
    model = tiny(arch)
    modules = model.recurrent_modules()
    if arch == "sru":
        assert modules == {}  # its recurrence is elementwise: nothing to skip
        return
    assert modules and set(modules.values()) <= set(range(model.config.num_layers))
    for name in modules:
        inner = model.get_submodule(name)
        assert isinstance(inner, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)), name
        assert inner.bias is None, name


@pytest.mark.parametrize("arch", list_models())
def test_zero_threshold_is_the_exact_rollout(arch):
    model = tiny(arch)
    frames = smooth_frames()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = delta_rollout(model, frames, 0.0, pre=3, aft=4)
    np.testing.assert_allclose(run.outputs, run.exact_outputs, rtol=0, atol=1e-12)
    assert np.nanmax(run.hidden_error) < 1e-12 and run.output_error.max() < 1e-24
    # the model is itself again: same weights, same modules, same outputs
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(isinstance(m, DeltaModule) for m in model.modules())
    again = exact_rollout(model, frames, 3, 4)
    np.testing.assert_array_equal(again.outputs.float().numpy(), run.exact_outputs)


def direct_count(inputs: list[torch.Tensor], eps: float) -> tuple[list[int], list[int]]:
    """Thresholded deltas against a reference that moves by what was kept (Neil et al. 2017)."""
    reference = torch.zeros_like(inputs[0])
    skipped, entries = [], []
    for h in inputs:
        delta = h - reference
        delta[delta.abs() < eps] = 0
        skipped.append(int((delta == 0).sum()))
        entries.append(delta.numel())
        reference = reference + delta
    return skipped, entries


@pytest.mark.parametrize("arch", [a for a in list_models() if a != "sru"])
def test_skipped_fraction_matches_a_direct_count(arch):
    model = tiny(arch)
    eps = 0.02
    inputs: dict[str, list[torch.Tensor]] = {}
    with delta_mode(model, eps) as session, torch.no_grad():
        for name, wrapper in session.wrappers.items():
            wrapper.register_forward_pre_hook(
                lambda m, args, name=name: inputs.setdefault(name, []).append(args[0])
            )
        model(smooth_frames(), 3, 4)
    macs_skipped = macs_total = zero_deltas = 0
    for name, stats in session.stats.items():
        skipped, entries = direct_count(inputs[name], eps)
        zero_deltas += sum(direct_count(inputs[name], 0.0)[0])
        assert stats.skipped == skipped and stats.entries == entries, name
        weight = model.get_submodule(name).weight
        per_entry = weight.numel() // weight.shape[1]  # output channels x kernel taps
        macs_skipped += per_entry * sum(skipped)
        macs_total += per_entry * sum(entries)
    assert sum(sum(s.skipped) for s in session.stats.values()) > zero_deltas  # more than exact zeros
    run = delta_rollout(model, smooth_frames(), eps, pre=3, aft=4)
    assert run.skipped_fraction == pytest.approx(macs_skipped / macs_total, rel=1e-12)
    assert np.nanmax(run.skipped) <= 1 and np.nanmin(run.skipped) >= 0


def test_a_larger_threshold_skips_more_and_errs_more_on_a_convlstm():
    model = tiny("convlstm")
    frames = smooth_frames()
    exact = exact_rollout(model, frames, 3, 4)
    small, large = (delta_rollout(model, frames, eps, 3, 4, exact=exact) for eps in (1e-3, 0.2))
    assert large.skipped_fraction > small.skipped_fraction
    assert large.output_error.sum() > small.output_error.sum() > 0


def test_a_negative_threshold_is_refused():
    with pytest.raises(ConfigError, match="eps must be >= 0"), delta_mode(tiny("lstm"), -1.0):
        pass


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def checkpoint_and_input(tmp_path):
    model = create_model(
        "predrnn", num_hidden=(4, 4), filter_size=3, patch_size=2, height=8, width=12, pre=3, aft=3
    )
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model)
    frames = smooth_frames(torch.float32).numpy()[:, :6]  # (2, 6, 1, 8, 12): 3 context + 3 truth
    np.save(tmp_path / "frames.npy", frames)
    return path, tmp_path / "frames.npy"


def test_delta_command_writes_a_well_formed_curve_and_plot(checkpoint_and_input, tmp_path, capsys):
    ckpt, frames = checkpoint_and_input
    out = tmp_path / "curve" / "curve.csv"
    assert main(["delta", str(ckpt), str(frames), "--eps", "0,0.01,0.1", "-o", str(out)]) == 0
    assert "skipped" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0].keys()) == CURVE_COLUMNS and [float(r["eps"]) for r in rows] == [0, 0.01, 0.1]
    for r in rows:
        assert 0 <= float(r["skipped_fraction"]) <= 1 and -1 <= float(r["ssim_vs_truth"]) <= 1
    assert float(rows[0]["mse_vs_exact"]) < 1e-10 and float(rows[0]["ssim_vs_exact"]) == pytest.approx(1)
    steps = list(csv.DictReader((tmp_path / "curve" / "curve_steps.csv").open()))
    assert len(steps) == 3 * 2 * 5  # eps x layers x steps
    image = cv2.imread(str(tmp_path / "curve" / "curve.png"))
    assert image is not None and image.shape[0] > 400


@pytest.mark.parametrize("bad, message", [("0,x", "numbers"), ("-1", ">= 0")])
def test_delta_command_names_bad_thresholds(checkpoint_and_input, tmp_path, capsys, bad, message):
    ckpt, frames = checkpoint_and_input
    assert main(["delta", str(ckpt), str(frames), "--eps", bad, "-o", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_with_delta_eps_reports_skips_and_zero_is_exact(checkpoint_and_input, tmp_path, capsys):
    ckpt, frames = checkpoint_and_input
    exact, delta0, delta = (tmp_path / f"{n}.npy" for n in ("exact", "delta0", "delta"))
    assert main(["predict", str(ckpt), str(frames), "-o", str(exact)]) == 0
    assert main(["predict", str(ckpt), str(frames), "-o", str(delta0), "--delta-eps", "0"]) == 0
    assert main(["predict", str(ckpt), str(frames), "-o", str(delta), "--delta-eps", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "delta eps 0.05" in out and "skipped" in out
    # float32: eps = 0 differs from exact by rounding only; measured at most 1.04e-7 over every
    # registered architecture (3 random models each), so 1e-6 is ten times that
    np.testing.assert_allclose(np.load(delta0), np.load(exact), atol=1e-6)
    assert np.load(delta).shape == np.load(exact).shape
