"""The one writer (mimviewer.atomic): every output is atomic, exact-named, umask-moded, and never
written over a device, FIFO, folder or an input; a failure is one line naming the file."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mimviewer import atomic, export
from mimviewer.atomic import OutputError, atomic_file, check_output, write_text
from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.export import writers
from mimviewer.nets import create_model
from mimviewer.trace import ProbeSpec, Trace

REPO = Path(__file__).resolve().parents[1]


def tiny_model():
    return create_model(
        "convlstm", num_hidden=(2,), filter_size=3, patch_size=2, height=8, width=8, pre=2, aft=2
    )


def tiny_trace() -> Trace:
    maps = {"0/f": np.zeros((3, 4, 1, 4, 4), np.float32)}
    stats = {"0/f": np.zeros((3, 1, 6), np.float32)}
    return Trace(maps=maps, stats=stats, spec=ProbeSpec(), pre=2, aft=2)


FRAMES = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)

# Every writer of the project, each writing one file at the given path.
WRITERS = {
    "checkpoint": lambda p: save_checkpoint(p, tiny_model()),
    "gif": lambda p: export.write_comparison(p, FRAMES, {"m": FRAMES[2:]}, pre=2),
    "mp4": lambda p: export.write_comparison(p, FRAMES, {"m": FRAMES[2:]}, pre=2),
    "png": lambda p: export.write_strip(p, FRAMES, {"m": FRAMES[2:]}, pre=2),
    "csv": lambda p: export.write_metrics_csv(p, {"mse": np.ones(3)}),
    "json": lambda p: export.write_metrics_json(p, {"mse": np.ones(3)}),
    "gates": lambda p: export.write_trace_stats(p, tiny_trace()),
    "trace": lambda p: tiny_trace().save(p),
    "text": lambda p: write_text(p, "hello\n"),
}
SUFFIX = {"checkpoint": ".safetensors", "gates": ".csv", "trace": ".npz", "text": ".txt"}


def target(tmp_path: Path, kind: str) -> Path:
    return tmp_path / f"out{SUFFIX.get(kind, '.' + kind)}"


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_writer_replaces_the_file_with_umask_permissions_and_no_litter(kind, tmp_path):
    path = target(tmp_path, kind)
    path.write_bytes(b"old")
    old_mask = os.umask(0o027)
    try:
        WRITERS[kind](path)
    finally:
        os.umask(old_mask)
    assert path.read_bytes() != b"old"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 less the umask, as any new file
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # exact name, no temp file left


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(kind, tmp_path, monkeypatch):
    path = target(tmp_path, kind)
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        WRITERS[kind](path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "no space left" in message and "\n" not in message
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_permission_and_read_only_errors_are_one_line(code, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(
        OutputError, match=r"out\.csv: cannot write: (permission denied|read-only file system)"
    ):
        export.write_metrics_csv(tmp_path / "out.csv", {"mse": np.ones(2)})


def test_device_nodes_folders_fifos_and_paths_under_files_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("x")
    for path, kind in (
        ("/dev/null", "a device"),
        (fifo, "a FIFO"),
        (tmp_path, "a folder"),
        (tmp_path / "file" / "out.csv", "is a file, not a folder"),
    ):
        with pytest.raises(OutputError, match=kind):
            write_text(path, "data")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # the node is still a device
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_an_output_that_is_an_input_is_refused(tmp_path):
    source = tmp_path / "in.npy"
    np.save(source, FRAMES)
    with pytest.raises(OutputError, match="is the input"):
        check_output(tmp_path / "." / "in.npy", [source])
    checkpoint = tmp_path / "m.safetensors"
    save_checkpoint(checkpoint, tiny_model())
    assert main(["predict", str(checkpoint), str(source), "-o", str(source), "--device", "cpu"]) == 2
    np.testing.assert_array_equal(np.load(source), FRAMES)  # untouched


def test_predict_refuses_dev_null_and_names_the_exact_trace_path(tmp_path, capsys):
    source = tmp_path / "in.npy"
    np.save(source, FRAMES)
    checkpoint = tmp_path / "m.safetensors"
    save_checkpoint(checkpoint, tiny_model())
    assert main(["predict", str(checkpoint), str(source), "-o", "/dev/null"]) == 2
    assert "/dev/null: is a device" in capsys.readouterr().err
    trace = tmp_path / "trace.data"  # no .npz suffix: the file still has exactly this name
    out = tmp_path / "p.npy"
    assert main(["predict", str(checkpoint), str(source), "-o", str(out), "--trace", str(trace)]) == 0
    assert trace.is_file() and not (tmp_path / "trace.data.npz").exists()
    assert Trace.load(trace).pre == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_writer_killed_mid_write_leaves_the_old_file(sig, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        sys.path.insert(0, {str(REPO)!r})
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwinds, as Ctrl-C does
        from mimviewer.atomic import atomic_file
        with atomic_file({str(path)!r}) as f:
            f.write(b"x" * 1000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name != path.name]
        assert len(temps) == 1 and temps[0].parent == path.parent  # the temp file is beside the target
        process.send_signal(sig)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert path.read_bytes() == b"old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != path.name]
    if sig == signal.SIGKILL:  # nothing can run: the temp file stays, hidden, never the target
        assert all(name.startswith(".big.bin.") for name in leftovers)
    else:
        assert leftovers == []


def test_a_writer_interrupted_mid_write_cleans_up(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_file(path) as f:
        f.write(b"new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]


def test_a_video_writer_that_fails_silently_is_caught(tmp_path, monkeypatch):
    """ffmpeg on a full disk can exit without an exception: the file is read back before it is kept."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")

    class Truncating:
        def __init__(self, name, **_options):
            self.name = name

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            Path(self.name).write_bytes(b"\x00\x00\x00\x18ftypmp42")  # a header and nothing else
            return False

        def append_data(self, image):
            pass

    monkeypatch.setattr(writers.imageio, "get_writer", Truncating)
    started = time.monotonic()
    with pytest.raises(export.ExportError, match=r"clip\.mp4: the written file does not decode"):
        export.write_comparison(path, FRAMES, {"m": FRAMES[2:]}, pre=2)
    assert time.monotonic() - started < 60
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
