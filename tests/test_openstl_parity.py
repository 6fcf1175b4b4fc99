"""A researcher opens checkpoints straight from OpenSTL: mimviewer predicts what OpenSTL predicts.

The fixtures (tools/make_openstl_fixtures.py) are tiny models saved in OpenSTL's own
flavours, with OpenSTL's own outputs on random frames. Each is loaded here with no config
at all (everything inferred from the weights, or read from Lightning's hyper-parameters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mimviewer.checkpoints import load_checkpoint
from mimviewer.cli import main
from mimviewer.errors import ConfigError
from mimviewer.nets import model_entry

FIXTURES = Path(__file__).parent / "fixtures" / "openstl"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
ATOL = 1e-5  # float32 rounding; in practice the outputs agree exactly

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
    try:
        model_entry(name)
    except ConfigError:
        pytest.skip(f"architecture {name} is not in mimviewer yet")
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
    with torch.inference_mode():
        outputs = loaded.model(frames, int(data["pre"]), int(data["aft"])).numpy()
    reference = data["outputs"]
    assert outputs.shape == reference.shape
    assert reference.std() > 0.01  # OpenSTL's outputs are not trivially constant
    np.testing.assert_allclose(outputs, reference, atol=ATOL, rtol=0)


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
    np.testing.assert_allclose(prediction, data["outputs"][:, -aft:], atol=ATOL, rtol=0)


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
