"""A researcher opens checkpoints straight from OpenSTL: mimviewer predicts what OpenSTL predicts.

The fixtures (tools/make_openstl_fixtures.py) are tiny models saved in OpenSTL's own
flavours, with OpenSTL's own outputs on random frames. Each is loaded here with no config
at all (everything inferred from the weights, or read from Lightning's hyper-parameters).

Exactness is the point, so the models are compared in float64: OpenSTL's outputs were
computed in float64 and ours are too. A float32 comparison cannot be exact across machines:
oneDNN picks a different convolution kernel per instruction set, and E3D-LSTM's float32
outputs differed by 2.9e-5 between an Intel Xeon and the AMD EPYC the fixtures were made on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mimviewer.checkpoints import load_checkpoint
from mimviewer.cli import main
from mimviewer.nets import model_entry

FIXTURES = Path(__file__).parent / "fixtures" / "openstl"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
# float64 against float64: measured max |diff| 0 on the AMD EPYC; double rounding (~1e-16
# relative) over a 7-step recurrence stays many orders of magnitude below this.
ATOL_FLOAT64 = 1e-10
# `predict` runs in float32. Its largest difference to the float64 reference, measured on the
# AMD EPYC over all six fixtures, is 2.2e-5 (E3D-LSTM; PredRNN 1.3e-6, MIM 4.0e-6), and float32
# results on an Intel Xeon differed from the AMD ones by at most 2.9e-5 (E3D-LSTM): 1e-4 covers
# both with margin while still catching any real difference (the outputs' std is 0.15-1.0).
ATOL_FLOAT32 = 1e-4

# What the fixture tool built (tools/make_openstl_fixtures.py), to check the inference.
EXPECTED = {
    "convlstm": dict(num_hidden=(8, 8), patch_size=2, filter_size=3, layer_norm=True, channels=1),
    "predrnn": dict(num_hidden=(8, 8), patch_size=4, filter_size=3, layer_norm=False, channels=1),
    "predrnn_v2": dict(num_hidden=(8, 8), patch_size=2, filter_size=3, layer_norm=True, channels=3),
    "predrnn_pp": dict(num_hidden=(8, 8), patch_size=2, filter_size=3, layer_norm=False, channels=1),
    "mim": dict(num_hidden=(8, 8, 8), patch_size=2, filter_size=3, layer_norm=True, channels=1),
    "e3d_lstm": dict(num_hidden=(8, 8), patch_size=4, filter_size=5, layer_norm=False, channels=1),
}


def fixture(name: str) -> dict:
    model_entry(name)  # every OpenSTL recurrent architecture is registered: a ConfigError here is a failure
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_every_openstl_architecture_has_a_fixture() -> None:
    assert set(NAMES) == set(EXPECTED)
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 2 * 1024 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_without_a_config_and_predicts_what_openstl_predicts(name: str) -> None:
    data = fixture(name)
    frames = torch.from_numpy(data["frames"])  # (B, T, C, H, W)
    loaded = load_checkpoint(FIXTURES / str(data["checkpoint"]), frame_size=tuple(frames.shape[-2:]))
    assert loaded.config.arch == name
    for field, value in EXPECTED[name].items():
        assert getattr(loaded.config, field) == value, field
    model = loaded.model.double()
    with torch.inference_mode():
        outputs = model(frames.double(), int(data["pre"]), int(data["aft"])).numpy()
    reference = data["outputs"]
    assert reference.dtype == np.float64 and outputs.dtype == np.float64
    assert outputs.shape == reference.shape
    assert reference.std() > 0.01  # OpenSTL's outputs are not trivially constant
    np.testing.assert_allclose(outputs, reference, atol=ATOL_FLOAT64, rtol=0)


def test_lightning_hyper_parameters_become_the_config() -> None:
    data = fixture("convlstm")
    loaded = load_checkpoint(FIXTURES / str(data["checkpoint"]))
    assert loaded.format == "openstl-lightning"
    assert (loaded.config.pre, loaded.config.aft) == (4, 4)  # from hyper_parameters, not defaults
    assert (loaded.config.height, loaded.config.width) == (16, 16)
    assert loaded.metadata["global_step"] == "1234"


@pytest.mark.parametrize("name", ["predrnn", "mim"])
def test_predict_on_the_command_line_matches_openstl(name: str, tmp_path: Path) -> None:
    data = fixture(name)
    frames = data["frames"]
    pre, aft = int(data["pre"]), int(data["aft"])
    np.save(tmp_path / "frames.npy", frames)
    out = tmp_path / "prediction.npy"
    argv = ["predict", str(FIXTURES / str(data["checkpoint"])), str(tmp_path / "frames.npy"), "-o", str(out)]
    assert main([*argv, "--pre", str(pre), "--aft", str(aft), "--device", "cpu"]) == 0
    prediction = np.load(out)
    assert prediction.shape == (frames.shape[0], aft, *frames.shape[2:])
    np.testing.assert_allclose(prediction, data["outputs"][:, -aft:], atol=ATOL_FLOAT32, rtol=0)


# The fixture tool's flavour -> the format mimviewer reports for it.
FORMATS = {
    "lightning": "openstl-lightning",
    "lightning-bare": "openstl-lightning",
    "state-dict-module": "state-dict",
    "state-dict": "state-dict",
    "training-state": "training-state",
    "net-param": "predrnn-original",
}


@pytest.mark.parametrize("name", NAMES)
def test_info_describes_every_fixture(name: str, capsys: pytest.CaptureFixture) -> None:
    data = fixture(name)
    assert main(["info", str(FIXTURES / str(data["checkpoint"]))]) == 0
    text = capsys.readouterr().out
    assert f"architecture: {name} " in text
    assert f"format:       {FORMATS[str(data['flavour'])]}\n" in text
