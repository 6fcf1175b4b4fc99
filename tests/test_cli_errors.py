"""Every class of bad input on the command line: exit status 2, exactly one line on stderr, no
traceback, memory bounded.

Each command line runs as its own process (forked from a server that imported torch once,
see cli_forkserver.py) under an address-space limit (RLIMIT_AS: what the server already
maps plus 1.5 GiB) and a CPU-time limit; its peak memory must stay within PEAK_SLACK of
the server's. A few cases also run through the real ``python -m mimviewer`` entry point.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_forkserver import ForkServer

PEAK_SLACK = 400 << 20  # what one refused command may add to the imported server's memory
AS_SLACK = 3 << 29  # 1.5 GiB of address space beyond the server's own mappings
CPU_SECONDS = 60  # a refusal is instant; anything near this is a runaway
NOBODY = 65534
# Cases run as if on a machine with less memory (a 64 MiB inflating member against 32 MiB).
SMALL_MACHINE = {
    "zip-bomb": {"MIMVIEWER_MEMORY_LIMIT": str(32 << 20)},
    "rollout-too-big": {"MIMVIEWER_MEMORY_LIMIT": str(1 << 20)},
}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _make_files(folder: Path) -> None:
    """Every file the cases below point at, in one folder any user may read."""
    import cv2
    import h5py
    from safetensors.torch import load_file, save_file

    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.nets import create_model
    from mimviewer.train import TrainConfig, train

    model = create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=4, height=16, width=16, pre=2, aft=2
    )
    save_checkpoint(folder / "ck.safetensors", model)
    np.save(folder / "in.npy", np.random.default_rng(0).random((6, 1, 16, 16), dtype=np.float32))
    with h5py.File(folder / "strings.h5", "w") as f:
        f["frames"] = np.array([b"abc"] * 48).reshape(3, 4, 4)
    with h5py.File(folder / "rank6.h5", "w") as f:
        f["frames"] = np.zeros((2, 2, 2, 2, 16, 16), np.float32)
    (folder / "pngs").mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / "pngs" / f"{i}.png"), np.zeros((16, 16), np.uint8))
    (folder / "pngs" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    configs = {
        "binary.py": bytes(range(256)) * 4,
        "nested.json": b"[" * 100_000 + b"]" * 100_000,
        "string.json": b'{"filter_size": "big"}',
        "nan.json": b'{"patch_size": NaN}',
        "zero.json": b'{"patch_size": 0}',
        "channels.json": b'{"channels": 1000000000}',
        "name.py": b"method = '" + b"x" * 1_000_000 + b"'\n",
        "aft.py": b"method = 'convlstm'\naft_seq_length = 1000000000\n",
    }
    for name, content in configs.items():
        (folder / name).write_bytes(content)
    weights = load_file(folder / "ck.safetensors")
    torch.save({k: v.long() for k, v in weights.items()}, folder / "int64.pth")
    expanded = {k: torch.zeros(1).expand(v.shape[0] * 1500, *v.shape[1:]) for k, v in weights.items()}
    torch.save(expanded, folder / "expand.pth")
    nan = {k: v.clone() for k, v in weights.items()}
    next(iter(nan.values())).view(-1)[0] = float("nan")
    save_file(nan, folder / "nan.safetensors")
    from safetensors import safe_open

    with safe_open(str(folder / "ck.safetensors"), "pt") as f:
        metadata = dict(f.metadata())
    for name, change in (("hidden6000", '"num_hidden": [6000]'), ("aft1e9", '"aft": 1000000000')):
        key = change.split(":")[0]
        meta = dict(metadata)
        meta["mimviewer.config"] = re.sub(rf"{key}: [^,}}]+", change, meta["mimviewer.config"])
        save_file(weights, folder / f"{name}.safetensors", metadata=meta)
    torch.save(weights, folder / "bomb.pth")
    with zipfile.ZipFile(folder / "bomb.pth", "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data/huge", bytes(64 << 20))
    cfg = TrainConfig(
        arch="convlstm", model={"num_hidden": (4,), "filter_size": 3, "patch_size": 4, "pre": 2, "aft": 2},
        size=16, steps=2, batch_size=2, val_sequences=2, val_every=100, checkpoint_every=2,
    )  # fmt: skip
    train(cfg, folder / "run", log=lambda _: None)
    for name, damage in (
        ("truncated", lambda p: p.write_bytes(p.read_bytes()[:200])),
        ("hostile", lambda p: p.write_bytes(pickle.dumps(_Evil()))),
        ("badjson", None),
    ):
        shutil.copytree(folder / "run", folder / name)
        if damage is None:
            (folder / name / "train.json").write_text('{"steps": "many"')
        else:
            damage(folder / name / "train_state.pt")
    import imageio.v2 as imageio

    imageio.mimwrite(folder / "v.gif", np.zeros((3, 16, 16), np.uint8), duration=100)
    shutil.copytree(folder / "pngs", folder / "pngs_locked")
    (folder / "pngs_locked" / "0.png").rename(folder / "pngs_locked" / "0locked.png")  # the first frame
    sources = {".npy": "in.npy", ".h5": "rank6.h5", ".gif": "v.gif"}
    for name in ("locked.npy", "locked.safetensors", "locked.json", "locked.h5", "locked.gif"):
        shutil.copy(folder / sources.get(Path(name).suffix, "ck.safetensors"), folder / name)
    for path in folder.rglob("*locked.*"):
        path.chmod(0)
    for path in [folder, *folder.rglob("*")]:
        if "locked." not in path.name:
            path.chmod(0o777 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def world(fork_server):
    folder = Path(tempfile.mkdtemp(prefix="mimviewer-cli-"))  # not under pytest's 0700 tree
    try:
        _make_files(folder)
        yield fork_server, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


CK, IN = "ck.safetensors", "in.npy"
PREDICT = ["predict", CK, IN, "-o", "out.npy", "--device", "cpu"]
EXPORT = ["export", CK, IN, "-o", "out.gif", "--device", "cpu", "--pre", "2", "--aft", "2"]
TRAIN = ["train", "--size", "16", "--out", "newrun", "--num-hidden", "4", "--device", "cpu"]

# (id, argv, what the one line must say, files the line must name)
CASES: list[tuple[str, list[str], str, tuple[str, ...]]] = [
    ("config-binary", [*PREDICT, "--config", "binary.py"], "binary", ("binary.py",)),
    ("config-nested", [*PREDICT, "--config", "nested.json"], "not valid JSON", ("nested.json",)),
    (
        "config-string",
        [*PREDICT, "--config", "string.json"],
        "filter_size must be a whole number",
        ("string.json",),
    ),
    ("config-nan", [*PREDICT, "--config", "nan.json"], "patch_size must be a whole number", ("nan.json",)),
    ("config-zero-patch", [*PREDICT, "--config", "zero.json"], "patch_size must be in 1..64", ("zero.json",)),
    ("config-1e9-channels", [*PREDICT, "--config", "channels.json"], "channels must be in 1..64", ()),
    ("config-1MB-name", [*PREDICT, "--config", "name.py"], r"chars\) is not a recurrent model", ("name.py",)),
    ("config-aft-1e9", [*PREDICT, "--config", "aft.py"], "aft must be in 1..10000", ("aft.py",)),
    (
        "checkpoint-aft-1e9",
        ["predict", "aft1e9.safetensors", IN, "-o", "o.npy"],
        "aft must be in",
        ("aft1e9",),
    ),
    ("patch-size-0", [*PREDICT, "--patch-size", "0"], "--patch-size must be in 1..64", ()),
    ("channels-0", [*PREDICT, "--channels", "0"], "--channels must be in 1..64", ()),
    ("info-channels-0", ["info", CK, "--channels", "0"], "--channels must be in 1..64", ()),
    ("num-hidden-text", [*PREDICT, "--num-hidden", "a,b"], "--num-hidden must be sizes", ()),
    ("device-meta", [*PREDICT[:-1], "meta"], "device 'meta' is not supported", ()),
    ("device-mps", [*PREDICT[:-1], "mps"], "device 'mps' is not supported", ()),
    ("device-junk", [*PREDICT[:-1], "gpu7"], "unknown device", ()),
    ("fps-nan", [*EXPORT, "--fps", "nan"], "--fps must be a finite number", ()),
    ("fps-tiny", [*EXPORT, "--fps", "1e-300"], "--fps must be in", ()),
    ("fps-text", [*EXPORT, "--fps", "fast"], "invalid float value", ()),
    ("aft-1e9", [*PREDICT, "--aft", "1000000000"], "--aft must be in 1..10000", ()),
    (
        "rollout-too-big",
        [*PREDICT, "--aft", "10000"],
        r"would need about 20 MiB; this machine can hold 1 MiB",
        (),
    ),
    ("pre-0", [*PREDICT, "--pre", "0"], "--pre must be in 1..10000", ()),
    ("batch-size-0", [*PREDICT, "--batch-size", "0"], "--batch-size must be in 1..4096", ()),
    ("export-start-negative", [*EXPORT, "--start", "-4"], "--start must be in", ()),
    ("hdf5-strings", ["predict", CK, "strings.h5", "-o", "o.npy"], "byte strings", ("strings.h5",)),
    ("hdf5-rank6", ["export", CK, "rank6.h5", "-o", "o.csv"], "has 6 axes", ("rank6.h5",)),
    ("png-corrupt", ["predict", CK, "pngs", "-o", "o.npy", "--pre", "2"], "cannot decode", ("1.png",)),
    ("weights-int64", ["predict", "int64.pth", IN, "-o", "o.npy"], "int64 values", ("int64.pth",)),
    (
        "weights-nan",
        ["predict", "nan.safetensors", IN, "-o", "o.npy"],
        "NaN or infinite",
        ("nan.safetensors",),
    ),
    ("weights-stride0", ["info", "expand.pth", "--channels", "1"], "stride-0", ("expand.pth",)),
    ("config-hidden-6000", ["info", "hidden6000.safetensors"], "do not fit|would need", ("hidden6000",)),
    ("zip-bomb", ["info", "bomb.pth", "--channels", "1"], "inflated would need", ("bomb.pth",)),
    (
        "state-truncated",
        ["train", "--resume", "truncated"],
        "not a readable training state",
        ("train_state.pt",),
    ),
    ("state-hostile", ["train", "--resume", "hostile"], "not a readable training state", ("train_state.pt",)),
    ("train-json-bad", ["train", "--resume", "badjson"], "not valid JSON", ("train.json",)),
    ("checkpoint-every-0", [*TRAIN, "--checkpoint-every", "0"], "--checkpoint-every must be in", ()),
    ("val-every-0", [*TRAIN, "--val-every", "0"], "--val-every must be in", ()),
    ("sampling-stop-0", [*TRAIN, "--sampling-stop", "0"], "--sampling-stop must be in", ()),
    ("sampling-stop-negative", [*TRAIN, "--sampling-stop", "-1"], "--sampling-stop must be in", ()),
    ("lr-nan", [*TRAIN, "--lr", "nan"], "--lr must be a finite number", ()),
    ("val-sequences-0", [*TRAIN, "--val-sequences", "0"], "--val-sequences must be in", ()),
    (
        "train-too-big",
        ["train", "--out", "big", "--size", "4096", "--batch-size", "4096"],
        "this machine can hold",
        (),
    ),
    ("missing-file", ["info", "nowhere.pth"], "no such file", ("nowhere.pth",)),
    # the same flag names in every command, checked once before any command runs
    ("view-aft-1e9", ["view", IN, "--checkpoint", CK, "--aft", "1000000000"], "--aft must be in", ()),
    (
        "watch-interval-0",
        ["watch", "pngs", "--checkpoint", CK, "--interval", "0"],
        "--interval must be in",
        (),
    ),
    ("watch-fps-nan", ["watch", "pngs", "--checkpoint", CK, "--fps", "nan"], "--fps must be a finite", ()),
    ("sweep-batch-0", ["sweep", CK, IN, "-o", "s.csv", "--batch-size", "0"], "--batch-size must be in", ()),
    ("delta-sequences-0", ["delta", CK, "-o", "d.json", "--sequences", "0"], "--sequences must be in", ()),
    ("whatif-fps-inf", ["whatif", CK, IN, "--edits", "e.json", "-o", "w.gif", "--fps", "inf"], "--fps", ()),
    (
        "attribute-steps-1e9",
        ["attribute", CK, IN, "-o", "a.png", "--steps", "1000000000"],
        "--steps must",
        (),
    ),
    ("attribute-sigma-nan", ["attribute", CK, IN, "-o", "a.png", "--blur-sigma", "nan"], "--blur-sigma", ()),
    ("folder-as-checkpoint", ["info", "pngs"], "is a folder", ("pngs",)),
]


def check_one_line(
    result: dict, server: ForkServer, expected: str, names: tuple[str, ...], code: int = 2
) -> str:
    err = result["stderr"]
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert result["code"] == code, (result["code"], line)
    assert line.startswith("mimviewer"), line
    assert re.search(expected, line), line
    for name in names:
        assert name in line, line
    assert len(line) < 600, line[:200]
    assert result["peak"] - server.baseline < PEAK_SLACK, result["peak"]
    return line


@pytest.mark.parametrize(("case", "argv", "expected", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_no_traceback_bounded_memory(world, case, argv, expected, names) -> None:
    server, folder = world
    env = SMALL_MACHINE.get(case, {})
    result = server.run(argv, folder, as_bytes=server.vm + AS_SLACK, cpu_seconds=CPU_SECONDS, env=env)
    check_one_line(result, server, expected, names)
    assert not (folder / "pwned").exists()


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["predict", CK, "locked.npy", "-o", "o.npy"], ("locked.npy",)),
        (["info", "locked.safetensors"], ("locked.safetensors",)),
        ([*PREDICT, "--config", "locked.json"], ("locked.json",)),
        (["predict", CK, "locked.h5", "-o", "o.npy"], ("locked.h5",)),
        (["predict", CK, "locked.gif", "-o", "o.npy"], ("locked.gif",)),
        (["predict", CK, "pngs_locked", "-o", "o.npy", "--pre", "2"], ("0locked.png",)),
    ],
    ids=["input", "checkpoint", "config", "hdf5", "video", "image"],
)
def test_an_unreadable_file_is_reported_as_permission_denied(world, argv, names) -> None:
    server, folder = world
    options = {"uid": NOBODY} if os.geteuid() == 0 else {}  # root reads any file: run as nobody
    result = server.run(argv, folder, as_bytes=server.vm + AS_SLACK, cpu_seconds=CPU_SECONDS, **options)
    line = check_one_line(result, server, "permission denied", names)
    assert "corrupt" not in line


def test_a_closed_stdout_is_one_line_not_a_traceback(world) -> None:
    """``mimviewer info X | head -0``, through the real entry point."""
    _, folder = world
    reader, writer = os.pipe()
    os.close(reader)  # the reader left before anything was written
    done = subprocess.run(
        [sys.executable, "-m", "mimviewer", "info", str(folder / CK)],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    os.close(writer)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        "mimviewer: error: standard output was closed before everything was written"
    ]
    assert done.returncode == 141


def test_the_real_entry_point_behaves_as_the_forked_children(world) -> None:
    server, folder = world
    argv = ["predict", "expand.pth", IN, "-o", "o.npy"]
    done = subprocess.run(
        [sys.executable, "-m", "mimviewer", *argv],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    forked = server.run(argv, folder)
    assert (done.returncode, done.stderr) == (forked["code"], forked["stderr"])
    assert done.returncode == 2 and "stride-0" in done.stderr
