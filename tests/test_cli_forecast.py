"""Issue 16 on the command line: a 10-frame input and a 10 -> 10 model give 10 frames past the end."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer import export
from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.data.synthetic import radar_storms
from mimviewer.inference import rollout
from mimviewer.metrics import frame_metrics
from mimviewer.nets import create_model

PRE = AFT = 10


@pytest.fixture
def files(tmp_path):
    import torch

    torch.manual_seed(0)
    model = create_model(
        "predrnn", num_hidden=(4,), filter_size=3, patch_size=4, height=16, width=16, pre=PRE, aft=AFT
    )
    save_checkpoint(tmp_path / "m.safetensors", model)
    dbz = radar_storms(1, length=15, size=16, seed=3)[0]  # (15, 1, 16, 16) dBZ
    np.save(tmp_path / "ten.npy", dbz[:10])
    np.save(tmp_path / "fifteen.npy", dbz)
    return tmp_path, model


def _unit(dbz: np.ndarray) -> np.ndarray:
    from mimviewer.data.units import dbz_to_unit

    return np.clip(dbz_to_unit(dbz), 0, 1).astype(np.float32)


def test_predict_gives_ten_frames_past_the_end(files, capsys):
    folder, model = files
    frames = np.load(folder / "ten.npy")
    np.save(folder / "ten_unit.npy", _unit(frames))

    assert (
        main(
            [
                "predict",
                str(folder / "m.safetensors"),
                str(folder / "ten_unit.npy"),
                "-o",
                str(folder / "p.npy"),
            ]
        )
        == 0
    )

    prediction = np.load(folder / "p.npy")
    assert prediction.shape == (AFT, 1, 16, 16)
    np.testing.assert_allclose(
        prediction, rollout(model, _unit(frames)[None], PRE, AFT).prediction[0], atol=1e-6
    )
    assert "10 not observed yet" in capsys.readouterr().out


def test_predict_runs_on_past_the_trained_horizon_from_a_chosen_now(files, capsys):
    folder, model = files
    frames = _unit(np.load(folder / "fifteen.npy"))
    np.save(folder / "u.npy", frames)
    args = ["predict", str(folder / "m.safetensors"), str(folder / "u.npy"), "-o", str(folder / "p.npy")]

    assert main([*args, "--now", "-1", "--aft", "12"]) == 0

    prediction = np.load(folder / "p.npy")
    assert prediction.shape == (12, 1, 16, 16)
    np.testing.assert_allclose(prediction, rollout(model, frames[None, 5:], PRE, 12).prediction[0], atol=1e-6)
    assert "2 past the trained horizon (10)" in capsys.readouterr().out


def test_export_gif_of_a_forecast_marks_the_future_not_observed(files, capsys):
    folder, _ = files
    out = folder / "f.gif"

    code = main(
        ["export", str(folder / "m.safetensors"), str(folder / "ten.npy"), "--units", "dBZ", "-o", str(out)]
    )

    assert code == 0
    images = imageio.mimread(out)
    assert len(images) == PRE + AFT  # 10 context + 10 forecast frames past the end
    layout = export.comparison_layout(np.zeros((1, 1, 16, 16)), {"m": None})
    for t, image in enumerate(images):
        for panel in (0, 2):  # GT and difference: nothing to show past the end
            y, x = layout.panel_origin(panel)
            corner = image[y + 1, x + 2, :3]
            absent = np.abs(corner.astype(int) - export.ABSENT_COLOUR).max() <= 8
            assert absent == (t >= PRE), (t, panel, corner)
    out_text = capsys.readouterr().out
    assert "10 not observed yet" in out_text and "no truth observed" in out_text


def test_export_metrics_exist_only_where_the_truth_does(files):
    folder, model = files
    out = folder / "f.json"

    code = main(
        ["export", str(folder / "m.safetensors"), str(folder / "fifteen.npy"), "--units", "dBZ",
         "--now", "9", "-o", str(out)]
    )  # fmt: skip

    assert code == 0
    document = json.loads(out.read_text())
    assert document["observed"] == [True] * 5 + [False] * 5
    frames = _unit(np.load(folder / "fifteen.npy"))
    expected = frame_metrics(
        frames[10:], rollout(model, frames[None, :10], PRE, AFT).prediction[0, :5], units="dBZ"
    )
    for name in ("mse", "ssim", "csi@0.5"):
        per_frame = document["per_frame"][name]
        np.testing.assert_allclose(per_frame[:5], expected[name], rtol=1e-5, atol=1e-7)
        assert per_frame[5:] == [None] * 5  # absent, not zero

    strip = main(
        [
            "export",
            str(folder / "m.safetensors"),
            str(folder / "ten.npy"),
            "--units",
            "dBZ",
            "-o",
            str(folder / "s.png"),
        ]
    )
    assert strip == 0 and imageio.imread(folder / "s.png").ndim == 3
