"""`mimviewer predict` and `mimviewer info` from the user's side: files in, files out, clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mimviewer.checkpoints import load_checkpoint, save_checkpoint
from mimviewer.cli import main
from mimviewer.inference import rollout
from mimviewer.nets import create_model
from mimviewer.trace import Trace


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A tiny PredRNN with LayerNorm (so its frame size is fixed at 16x16), defaults pre 3, aft 2."""
    model = create_model(
        "predrnn", num_hidden=(6, 6), filter_size=3, patch_size=4, height=16, width=16, layer_norm=True
    )
    model.config = model.config.replace(pre=3, aft=2)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, model, {"note": "test model"})
    return path


def run_cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_predict_batch_of_uint8_sequences(checkpoint: Path, tmp_path: Path) -> None:
    frames = np.random.default_rng(1).integers(0, 256, size=(3, 5, 1, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "in.npy", frames)
    out = tmp_path / "out" / "pred.npy"
    assert run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", out, "--device", "cpu") == 0

    prediction = np.load(out)
    assert prediction.dtype == np.float32 and prediction.shape == (3, 2, 1, 16, 16)  # aft from the file
    expected = rollout(load_checkpoint(checkpoint).model, frames[:, :3].astype(np.float32) / 255, 3, 2)
    np.testing.assert_array_equal(prediction, expected.prediction)


def test_predict_single_sequence_without_batch_axis(checkpoint: Path, tmp_path: Path) -> None:
    frames = np.random.default_rng(2).random((4, 16, 16), dtype=np.float32)  # (T, H, W)
    np.save(tmp_path / "in.npy", frames)
    out = tmp_path / "pred.npy"
    assert run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", out, "--pre", "4", "--aft", "3") == 0
    prediction = np.load(out)
    assert prediction.shape == (3, 1, 16, 16)  # no N axis, as in the input
    expected = rollout(load_checkpoint(checkpoint).model, frames, 4, 3).prediction[0]
    np.testing.assert_array_equal(prediction, expected)


def test_bf16_flag_runs_the_rollout_in_bf16(checkpoint: Path, tmp_path: Path) -> None:
    from mimviewer.inference import bf16_supported

    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no fast bf16 (AVX512-BF16/AMX)")
    frames = np.random.default_rng(3).random((2, 3, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "in.npy", frames)
    assert (
        run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", tmp_path / "a.npy", "--device", "cpu") == 0
    )
    assert run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", tmp_path / "b.npy", "--bf16") == 0
    exact, fast = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert 0 < np.abs(fast - exact).max() < 0.05


def test_batches_and_trace_cover_every_sequence(checkpoint: Path, tmp_path: Path) -> None:
    frames = np.random.default_rng(3).random((5, 3, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "in.npy", frames)
    whole, split = tmp_path / "whole.npy", tmp_path / "split.npy"
    assert run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", whole) == 0
    trace_path = tmp_path / "trace.npz"
    args = (
        "predict",
        checkpoint,
        tmp_path / "in.npy",
        "-o",
        split,
        "--batch-size",
        "2",
        "--trace",
        trace_path,
    )
    assert run_cli(*args) == 0
    np.testing.assert_allclose(np.load(split), np.load(whole), atol=1e-6, rtol=0)

    trace = Trace.load(trace_path)
    assert (trace.pre, trace.aft) == (3, 2)
    assert trace.num_layers == 2
    forget = trace.stat(1, "f", "mean")  # (steps, B)
    assert forget.shape == (4, 5)
    assert np.all((forget > 0) & (forget < 1))
    # Every sequence in the batch has its own trace: the last one is not a copy of the first.
    assert not np.allclose(trace.map(0, "C")[:, 0], trace.map(0, "C")[:, 4])


def test_openstl_style_weights_with_config_flags(tmp_path: Path) -> None:
    model = create_model("convlstm", num_hidden=(4, 4), filter_size=3, patch_size=2, height=12, width=12)
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "raw.pth")
    frames = np.random.default_rng(4).random((2, 6, 1, 12, 12), dtype=np.float32)
    np.save(tmp_path / "in.npy", frames)
    out = tmp_path / "pred.npy"
    flags = ("--arch", "convlstm", "--num-hidden", "4,4", "--filter-size", "3", "--patch-size", "2")
    assert run_cli("predict", tmp_path / "raw.pth", tmp_path / "in.npy", "-o", out, "--pre", "6", *flags) == 0
    assert np.load(out).shape == (2, 10, 1, 12, 12)  # aft: the default 10
    np.testing.assert_array_equal(np.load(out), rollout(model, frames, 6, 10).prediction)


def test_openstl_config_file_on_the_command_line(tmp_path: Path) -> None:
    """The weights cannot tell the context length; an OpenSTL-style config file can."""
    model = create_model(
        "predrnn", num_hidden=(4, 4), filter_size=3, patch_size=1, channels=4, height=8, width=8
    )
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.ckpt")
    (tmp_path / "PredRNN.py").write_text("method = 'PredRNN'\npatch_size = 1\npre_seq_length = 3\n")
    frames = np.random.default_rng(5).random((1, 3, 4, 8, 8), dtype=np.float32)
    np.save(tmp_path / "in.npy", frames)
    argv = ("predict", tmp_path / "w.ckpt", tmp_path / "in.npy", "-o", tmp_path / "o.npy", "--aft", "2")
    assert run_cli(*argv) == 2  # without the config: the default 10 context frames, but the input has 3
    assert run_cli(*argv, "--config", tmp_path / "PredRNN.py") == 0  # pre 3 from the config file
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), rollout(model, frames, 3, 2).prediction)


def test_info_describes_the_checkpoint(checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("info", checkpoint) == 0
    text = capsys.readouterr().out
    for expected in (
        "format:       mimviewer",
        "predrnn",
        "hidden 6,6",
        "16x16 (fixed by the weights)",
        "note",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (lambda: np.zeros((2, 16, 16), np.float32), (), r"2 frames, fewer than the 3 context frames"),
        (
            lambda: np.zeros((4, 16, 16), np.int32),
            (),
            r"in.npy: frames must be uint8, uint16 or float, not int32",
        ),
        # the file is memory-mapped and checked where it is read (frame 0 first): counts are per frame
        (
            lambda: np.full((4, 16, 16), -0.5, np.float32),
            (),
            r"in.npy \(frame 0\): 256 pixel value\(s\) are negative",
        ),
        (
            lambda: np.full((4, 16, 16), 300.0, np.float32),
            (),
            r"in.npy \(frame 0\): 256 pixel value\(s\) are above 255",
        ),
        (
            lambda: np.where(np.eye(16)[None] > 0, np.nan, 0.5).repeat(4, 0),
            (),
            r"in.npy \(frame 0\): 16 pixel value\(s\) are NaN",
        ),
        (lambda: np.zeros((16, 16), np.float32), (), r"expected frames \(N,T,C,H,W\)"),
        (lambda: np.zeros((4, 16, 16), np.float32), ("--device", "cuda:7"), r"cuda:7"),
    ],
)
def test_bad_input_is_one_clear_line(make_input, extra, message, checkpoint: Path, tmp_path, capsys) -> None:
    np.save(tmp_path / "in.npy", make_input())
    out = tmp_path / "pred.npy"
    assert run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mimviewer: error: ") and "\n" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_frame_not_divisible_by_patch(tmp_path: Path, capsys) -> None:
    model = create_model("convlstm", num_hidden=(4,), filter_size=3, patch_size=4, height=16, width=16)
    torch.save(model.state_dict(), tmp_path / "raw.pth")
    np.save(tmp_path / "in.npy", np.zeros((10, 1, 18, 16), np.float32))
    assert run_cli("predict", tmp_path / "raw.pth", tmp_path / "in.npy", "-o", tmp_path / "o.npy") == 2
    err = capsys.readouterr().err
    assert "(18x16) are not divisible by the patch size 4" in err and "raw.pth" in err


def test_missing_checkpoint(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "in.npy", np.zeros((4, 16, 16), np.float32))
    assert run_cli("predict", tmp_path / "missing.ckpt", tmp_path / "in.npy", "-o", tmp_path / "o.npy") == 2
    assert "missing.ckpt: no such file" in capsys.readouterr().err
    assert run_cli("info", tmp_path / "missing.ckpt") == 2


def test_errors_from_a_real_process_have_no_traceback(tmp_path: Path) -> None:
    """The real entry point, end to end: a corrupt checkpoint is one line on stderr, exit status 2."""
    np.save(tmp_path / "in.npy", np.zeros((4, 16, 16), np.float32))
    (tmp_path / "broken.ckpt").write_bytes(b"PK\x03\x04 this is not really a zip")
    command = [
        sys.executable,
        "-m",
        "mimviewer",
        "predict",
        str(tmp_path / "broken.ckpt"),
        str(tmp_path / "in.npy"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*command, "-o", str(tmp_path / "o.npy")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mimviewer: error: ") and "broken.ckpt: not a readable checkpoint" in lines[0]
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize(
    ("frames", "fit", "note"),
    [
        (np.full((4, 12, 12), 0.5, np.float32), "resize", "resized 12x12 -> 16x16"),
        (np.full((4, 20, 20), 0.5, np.float32), "crop", "centre-cropped 20x20 -> 16x16"),
        (np.full((4, 12, 12), 0.5, np.float32), "pad", "padded 12x12 -> 16x16"),
        (np.full((4, 3, 16, 16), 0.5, np.float32), "resize", "3 channel(s) -> 1 for the model (by luma)"),
    ],
)
def test_predict_adapts_the_input_to_the_model_as_view_does(
    frames, fit, note, checkpoint: Path, tmp_path: Path, capsys
) -> None:
    np.save(tmp_path / "in.npy", frames)
    out = tmp_path / "pred.npy"
    assert (
        run_cli("predict", checkpoint, tmp_path / "in.npy", "-o", out, "--fit", fit, "--device", "cpu") == 0
    )
    assert np.load(out).shape == (2, 1, 16, 16)
    assert note in capsys.readouterr().out


def test_float_frames_in_0_255_are_divided_by_255_and_reported(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(4, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "float255.npy", pixels)
    np.save(tmp_path / "uint8.npy", pixels.astype(np.uint8))
    for name in ("float255", "uint8"):
        assert (
            run_cli("predict", checkpoint, tmp_path / f"{name}.npy", "-o", tmp_path / f"{name}-out.npy") == 0
        )
    assert "read as 0..255" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "float255-out.npy"), np.load(tmp_path / "uint8-out.npy"))


def test_trace_settings_from_the_command_line(checkpoint: Path, tmp_path: Path, capsys) -> None:
    frames = np.random.default_rng(4).random((2, 3, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "in.npy", frames)
    settings = ("--lo", "0.3", "--hi", "0.6", "--dh-eps", "0.02", "--state-bound", "0.4", "--channel", "2")
    out = ("-o", tmp_path / "p.npy", "--trace", tmp_path / "t.npz")
    args = ("predict", checkpoint, tmp_path / "in.npy", *out)
    assert run_cli(*args, *settings) == 0
    trace = Trace.load(tmp_path / "t.npz")
    assert (trace.spec.lo, trace.spec.hi, trace.spec.eps, trace.spec.state_bound) == (0.3, 0.6, 0.02, 0.4)
    assert trace.spec.channel == 2
    # the same numbers as the library gives with those settings
    loaded = load_checkpoint(checkpoint)
    expected = rollout(loaded.model, frames, 3, 2, probes=trace.spec).trace
    np.testing.assert_array_equal(trace.stat(1, "f", "frac_high"), expected.stat(1, "f", "frac_high"))
    np.testing.assert_array_equal(trace.stat(0, "dH", "frac_still"), expected.stat(0, "dH", "frac_still"))
    # lo >= hi is refused before any work, in one line
    assert run_cli(*args, "--lo", "0.9", "--hi", "0.2") != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lo < hi" in err[0]
