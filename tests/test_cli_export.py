"""From the command line: a checkpoint and a sequence in, a GIF / strip / metrics file out."""

import csv
import json

import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.data.synthetic import bouncing_digits
from mimviewer.inference import rollout
from mimviewer.metrics import frame_metrics
from mimviewer.nets import create_model

PRE, AFT = 3, 2


def tiny_model(seed: int):
    import torch

    torch.manual_seed(seed)
    return create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16, pre=PRE, aft=AFT
    )


@pytest.fixture
def files(tmp_path):
    model = tiny_model(0)
    save_checkpoint(tmp_path / "tiny.safetensors", model)
    frames = bouncing_digits(1, length=PRE + AFT, size=16, num_digits=1, seed=5)[0]  # (5, 1, 16, 16)
    np.save(tmp_path / "seq.npy", frames)
    return tmp_path, model, frames


def test_export_gif_end_to_end(files, capsys):
    folder, _, _ = files
    out = folder / "out.gif"

    code = main(
        ["export", str(folder / "tiny.safetensors"), str(folder / "seq.npy"), "-o", str(out), "--fps", "5"]
    )

    assert code == 0
    frames = imageio.mimread(out)
    assert len(frames) == PRE + AFT  # context and predicted frames, the checkpoint's own pre/aft
    assert f"{PRE} context + {AFT} predicted" in capsys.readouterr().out


def test_export_metrics_csv_matches_the_library(files):
    folder, model, frames = files
    out = folder / "scores.csv"

    assert main(["export", str(folder / "tiny.safetensors"), str(folder / "seq.npy"), "-o", str(out)]) == 0

    expected = frame_metrics(frames[PRE:], rollout(model, frames[:PRE], PRE, AFT).prediction)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [PRE, PRE + 1]
    np.testing.assert_allclose([float(r["mse"]) for r in rows], expected["mse"], rtol=1e-6)
    np.testing.assert_allclose([float(r["ssim"]) for r in rows], expected["ssim"], rtol=1e-6)


def test_compare_two_checkpoints_into_json_and_a_strip(files):
    folder, _, _ = files
    save_checkpoint(folder / "other.safetensors", tiny_model(1))
    args = [
        str(folder / "tiny.safetensors"),
        str(folder / "seq.npy"),
        "--compare",
        str(folder / "other.safetensors"),
    ]

    assert main(["export", *args, "-o", str(folder / "both.json")]) == 0
    assert main(["export", *args, "-o", str(folder / "both.png"), "--stats", str(folder / "gates.csv")]) == 0

    document = json.loads((folder / "both.json").read_text())
    assert document["models"] == ["tiny", "other"]
    assert len(document["per_frame"]["tiny/mse"]) == AFT and "other/ssim" in document["summary"]
    assert document["per_frame"]["tiny/mse"] != document["per_frame"]["other/mse"]
    strip = imageio.imread(folder / "both.png")
    single = folder / "one.png"
    assert main(["export", *args[:2], "-o", str(single)]) == 0
    assert strip.shape[0] > imageio.imread(single).shape[0]  # one more row for the second model
    with open(folder / "gates.csv", newline="") as f:
        assert {row["quantity"] for row in csv.DictReader(f)} >= {"i", "f", "g", "o", "C", "H"}


def test_too_short_an_input_is_one_clear_line(files, capsys):
    folder, _, frames = files
    np.save(folder / "short.npy", frames[: PRE - 1])  # PRE frames would be a forecast

    code = main(
        ["export", str(folder / "tiny.safetensors"), str(folder / "short.npy"), "-o", str(folder / "x.gif")]
    )

    assert code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("mimviewer: error:") and "fewer than the 3 context frames" in err and "\n" not in err
    )
    assert not (folder / "x.gif").exists()


def test_unknown_output_type_is_refused(files, capsys):
    folder, _, _ = files
    code = main(
        ["export", str(folder / "tiny.safetensors"), str(folder / "seq.npy"), "-o", str(folder / "x.avi")]
    )
    assert code == 2
    assert "unknown export type" in capsys.readouterr().err


def test_demo_export_writes_a_gif(tmp_path, capsys):
    out = tmp_path / "demo.gif"
    assert main(["export", "--demo", "-o", str(out), "--pre", "2", "--aft", "2", "--device", "cpu"]) == 0
    assert len(imageio.mimread(out)) == 4
    assert "wrote" in capsys.readouterr().out


def test_radar_array_in_dbz_gets_radar_skill(tmp_path):
    from mimviewer.data.synthetic import radar_storms

    dbz = radar_storms(1, length=PRE + AFT, size=16, seed=2)[0]  # (T, 1, 16, 16) in dBZ
    np.save(tmp_path / "storms.npy", dbz)
    save_checkpoint(tmp_path / "tiny.safetensors", tiny_model(0))

    code = main(
        ["export", str(tmp_path / "tiny.safetensors"), str(tmp_path / "storms.npy"), "--units", "dBZ",
         "-o", str(tmp_path / "skill.json")]
    )  # fmt: skip

    assert code == 0
    document = json.loads((tmp_path / "skill.json").read_text())
    assert document["units"] == "dBZ"
    assert {"csi@10", "pod@0.5", "far@2", "hss@30"} <= set(document["per_frame"])


def test_an_rgb_video_feeds_a_grey_model(files):
    folder, _, frames = files
    video = folder / "digits.mp4"
    with imageio.get_writer(video, fps=4, macro_block_size=16) as writer:
        for frame in frames:
            writer.append_data(np.repeat(np.rint(frame[0] * 255).astype(np.uint8)[..., None], 3, -1))

    code = main(["export", str(folder / "tiny.safetensors"), str(video), "-o", str(folder / "v.json")])

    assert code == 0
    document = json.loads((folder / "v.json").read_text())
    assert document["units"] == "intensity" and len(document["per_frame"]["ssim"]) == AFT


def test_sample_and_start_pick_the_sequence_and_frames_scored(tmp_path):
    model = tiny_model(0)
    save_checkpoint(tmp_path / "tiny.safetensors", model)
    batch = bouncing_digits(2, length=PRE + AFT + 1, size=16, num_digits=1, seed=7)  # (2, 6, 1, 16, 16)
    np.save(tmp_path / "two.npy", batch)

    args = [str(tmp_path / "tiny.safetensors"), str(tmp_path / "two.npy"), "--sample", "1", "--start", "1"]
    assert main(["export", *args, "-o", str(tmp_path / "s.json")]) == 0

    chosen = batch[1, 1:]
    expected = frame_metrics(chosen[PRE:], rollout(model, chosen[:PRE], PRE, AFT).prediction)
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["first_frame"] == 1 + PRE and document["sample"] == 1
    np.testing.assert_allclose(document["per_frame"]["mae"], expected["mae"], rtol=1e-6)


def test_gate_statistics_take_thresholds_and_refuse_lo_above_hi(files, capsys):
    folder, _, _ = files
    base = ["export", str(folder / "tiny.safetensors"), str(folder / "seq.npy"), "-o", str(folder / "m.csv")]
    stats = folder / "gates.json"
    assert main([*base, "--stats", str(stats), "--lo", "0.4", "--hi", "0.55", "--dh-eps", "0.01"]) == 0
    document = json.loads(stats.read_text())
    assert (document["lo"], document["hi"], document["eps"]) == (0.4, 0.55, 0.01)
    assert any(row["frac_high"] for row in document["rows"] if row["quantity"] == "f")
    capsys.readouterr()
    assert main([*base, "--stats", str(stats), "--lo", "0.6", "--hi", "0.6"]) != 0
    assert "lo < hi" in capsys.readouterr().err
