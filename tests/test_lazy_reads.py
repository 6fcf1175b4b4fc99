"""Memory grows with the window, never with the file: predict, export and the window on 20,000 frames.

The long files are sparse (a header and a hole): 20,000 frames of 128x128 float32 are 1.3 GB
on paper and nothing on disk. Peak memory is measured in a separate process (``ru_maxrss`` from ``wait4``) and
compared with the same command on a 24-frame file of the same frames: reading or converting
the whole long file would add 1.3 GB (5 GB for ``float64``), the window adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mimviewer.checkpoints import save_checkpoint
from mimviewer.nets import create_model

LONG = 20_000
SIZE = 128
# What a window of 4 frames may add over the short file's run, at most: far below the 1.3 GB
# a whole read would take, far above the allocator's noise between two runs (a few MB).
SLACK_BYTES = 150 << 20


def _sparse_npy(path: Path, frames: int, dtype: str = "float32") -> Path:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(frames, 1, SIZE, SIZE))
    array[:24] = np.linspace(0, 1, 24 * SIZE * SIZE, dtype=dtype).reshape(24, 1, SIZE, SIZE)
    array.flush()
    del array
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, fork_server):
    folder = tmp_path_factory.mktemp("lazy")
    model = create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=4, height=SIZE, width=SIZE, pre=2, aft=2
    )
    save_checkpoint(folder / "tiny.safetensors", model)
    files = {
        "checkpoint": folder / "tiny.safetensors",
        "short": _sparse_npy(folder / "short.npy", 24, "float64"),
        "long": _sparse_npy(folder / "long.npy", LONG, "float64"),
    }
    return {**files, "server": fork_server}  # each command its own process; peak memory from wait4


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_20000_frame_npy_costs_what_its_window_costs(command: str, files, tmp_path: Path) -> None:
    assert files["long"].stat().st_size > 2.5e9  # 20,000 float64 frames of 128x128 on paper
    peaks = {}
    for name in ("short", "long"):
        if command == "predict":
            out = tmp_path / f"{name}.npy"
            argv = ["predict", files["checkpoint"], files[name], "-o", out, "--device", "cpu"]
        else:
            out = tmp_path / f"{name}.json"
            argv = ["export", files["checkpoint"], files[name], "-o", out, "--device", "cpu", "--start", "3"]
        result = files["server"].run([str(a) for a in argv], tmp_path)
        assert result["code"] == 0, result["stderr"]
        peaks[name] = result["peak"]
        assert out.exists()
    assert peaks["long"] - peaks["short"] < SLACK_BYTES, peaks


def test_predict_reads_the_same_frames_from_the_long_file(files, tmp_path: Path) -> None:
    from mimviewer.cli import main

    for name in ("short", "long"):
        assert (
            main(["predict", str(files["checkpoint"]), str(files[name]), "-o", str(tmp_path / f"{name}.npy")])
            == 0
        )
    np.testing.assert_array_equal(np.load(tmp_path / "short.npy"), np.load(tmp_path / "long.npy"))


def test_export_metrics_of_a_window_far_into_the_file(files, tmp_path: Path) -> None:
    from mimviewer.cli import main

    out = tmp_path / "far.json"
    argv = ["export", str(files["checkpoint"]), str(files["long"]), "-o", str(out), "--start", "19990"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["pre"] == 2 and report["aft"] == 2


def test_the_window_reaches_beyond_frame_500_reading_only_what_it_shows(tmp_path: Path) -> None:
    """The session holds a 2,000-frame file lazily: no 500-frame cap, frames read where looked at."""
    from mimviewer.data.lazy import CACHE_CHUNKS, CHUNK, LazyFrames
    from mimviewer.viewmodel import Session

    frames = np.arange(2000, dtype=np.float32)[:, None, None, None] / 2000 * np.ones((1, 1, 8, 8), np.float32)
    np.save(tmp_path / "ramp.npy", frames)
    session = Session()
    session.open_sequence(tmp_path / "ramp.npy")
    assert isinstance(session.all_frames, LazyFrames) and len(session.all_frames) == 2000
    model = create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=8, width=8, pre=3, aft=2
    )
    session.set_model(model, name="tiny")
    session.start = 1900
    assert session.start == 1900
    np.testing.assert_array_equal(session.frames[0], frames[1900])
    run = session.start_run()
    for update in session.inference(run, device="cpu"):
        session.accept(update)
    assert session.finished
    np.testing.assert_array_equal(session.images_at(4)["gt"], session.renderer.frames(frames[1904]))
    session.start = 10**6  # past the end: the last start from which the whole context fits
    assert session.start == 2000 - 3
    cache = session.all_frames._cache
    assert len(cache._chunks) <= CACHE_CHUNKS and CACHE_CHUNKS * CHUNK < 2000


def test_large_frames_make_smaller_chunks(monkeypatch) -> None:
    """The cache holds bytes, not frames: 4 frames per chunk when a chunk may hold 4 frames."""
    from mimviewer.data import lazy
    from mimviewer.data.sequence import from_array

    monkeypatch.setattr(lazy, "CHUNK_BYTES", 4 * 64 * 64 * 4)
    frames = np.random.default_rng(0).random((40, 1, 64, 64), dtype=np.float32)
    view = lazy.LazyFrames(from_array(frames))
    assert view._cache.chunk == 4
    np.testing.assert_array_equal(view[37], frames[37])
    np.testing.assert_array_equal(np.asarray(view[5:30]), frames[5:30])
    assert all(len(chunk) <= 4 for chunk in view._cache._chunks.values())
