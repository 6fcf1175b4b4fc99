"""Property: whatever is done to a file of any kind, reading it ends normally or in a MimviewerError.

Every file kind the program reads is mutated, byte-wise (flips, overwrites near the
header, truncation, insertion, deletion; the pickle inside a zip) and structurally
(tensors of other dtypes and shapes, stride-0 expansions, configs with values of any JSON
type): checkpoints of every flavour, config .py/.json, every reader's input, train.json
and train_state.pt. Each example runs in-process under a deadline and an address-space
limit (the process's current mappings + MEMORY_SLACK: an allocation beyond it raises
MemoryError, which fails the property); a few run as separate processes under RLIMIT_AS.

The profile is derandomized (the same examples every run: CI never flakes on a new one);
``MIMVIEWER_FUZZ_EXAMPLES`` raises the count for a longer local search.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import FLAVOUR_IDS, FLAVOURS, read_weights, write_weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimviewer.errors import MimviewerError

EXAMPLES = int(os.environ.get("MIMVIEWER_FUZZ_EXAMPLES", "12"))
MEMORY_SLACK = 1 << 30  # an example may map 1 GiB beyond what the process already maps
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),  # a hang bound, not a speed claim: examples take milliseconds
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
CASES_RUN: dict[str, int] = {}  # kind -> examples tried (printed at the end of the session by -s)


@contextmanager
def memory_bound():
    """RLIMIT_AS at the current mappings + MEMORY_SLACK for the duration (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        mapped = int(f.read().split("VmSize:")[1].split()[0]) * 1024
    limit = mapped + MEMORY_SLACK if hard == resource.RLIM_INFINITY else min(hard, mapped + MEMORY_SLACK)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(autouse=True)
def _bounded():
    """Every test here, examples and their making included, under the address-space limit."""
    with memory_bound():
        yield


def only_our_errors(kind: str, read) -> None:
    """Run ``read()``: fine if it returns or raises a MimviewerError; anything else fails the property."""
    CASES_RUN[kind] = CASES_RUN.get(kind, 0) + 1
    try:
        read()
    except MimviewerError as exc:
        assert "\n" not in str(exc).strip(), str(exc)[:300]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """``base`` with 1-4 byte-level changes, biased towards the first 512 bytes (headers)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data += draw(st.binary(max_size=32))
            continue
        op = draw(st.sampled_from(["flip", "header", "truncate", "insert", "delete", "set"]))
        top = len(data) - 1 if op not in ("header",) else min(len(data), 512) - 1
        pos = draw(st.integers(0, top))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op in ("header", "set"):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[pos : pos + draw(st.integers(1, 256))]
    return bytes(data)


def mutate_zip_pickle(draw, base: bytes) -> bytes:
    """The same torch zip with its data.pkl mutated (the unpickler's input, not the tensors)."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("data.pkl"):
                content = draw(mutated(content))
            target.writestr(info, content)
    return out.getvalue()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CONFIG_NAMES = [
    "arch", "num_hidden", "filter_size", "stride", "patch_size", "layer_norm", "channels", "height",
    "width", "pre", "aft", "units", "options", "method", "pre_seq_length", "aft_seq_length", "in_shape",
]  # fmt: skip


# -- checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(("flavour", "source", "channels"), FLAVOURS, ids=FLAVOUR_IDS)
@HOSTILE
@given(data=st.data())
def test_byte_mutations_of_every_checkpoint_flavour(flavour, source, channels, data, tmp_path) -> None:
    from mimviewer.checkpoints import load_checkpoint

    base = source.read_bytes()
    if zipfile.is_zipfile(source) and data.draw(st.booleans(), label="mutate the pickle inside"):
        content = mutate_zip_pickle(data.draw, base)
    else:
        content = data.draw(mutated(base))
    path = tmp_path / f"mutant{source.suffix}"
    path.write_bytes(content)
    only_our_errors("checkpoint-bytes", lambda: load_checkpoint(path, channels=channels))


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int64, torch.bool]


@pytest.mark.parametrize(("flavour", "source", "channels"), FLAVOURS, ids=FLAVOUR_IDS)
@HOSTILE
@given(data=st.data())
def test_checkpoints_whose_tensors_change_dtype_shape_or_declared_size(
    flavour, source, channels, data, tmp_path
) -> None:
    from mimviewer.checkpoints import load_checkpoint

    weights, extra = read_weights(flavour, source)
    original = dict(weights)
    keys = sorted(k for k, v in weights.items() if isinstance(v, torch.Tensor))
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(keys))
        change = data.draw(st.sampled_from(["dtype", "shape", "expand", "drop", "extra", "values"]))
        if change == "dtype":
            weights[key] = original[key].to(data.draw(st.sampled_from(DTYPES)))
        elif change == "shape":
            shape = data.draw(st.lists(st.integers(0, 9), max_size=5))
            weights[key] = torch.rand(shape)
        elif change == "expand" and flavour not in ("mimviewer", "safetensors"):
            huge = data.draw(st.lists(st.integers(1, 10**4), min_size=1, max_size=4))  # numel < 2**63
            weights[key] = torch.zeros(1).expand(huge)
        elif change == "drop":
            weights.pop(key, None)
        elif change == "extra":
            weights[data.draw(st.text(max_size=20))] = torch.rand(3)
        else:
            value = data.draw(st.sampled_from([float("nan"), float("inf"), 1e30, -1e30, 0.0]))
            weights[key] = torch.full_like(original[key].float(), value)
    if not weights:
        weights["x"] = torch.rand(1)
    path = tmp_path / f"changed{source.suffix}"
    write_weights(flavour, path, weights, extra)
    only_our_errors("checkpoint-tensors", lambda: load_checkpoint(path, channels=channels))


@pytest.mark.parametrize(
    ("flavour", "source", "channels"),
    [f for f in FLAVOURS if f[0] in ("mimviewer", "openstl-lightning")],
    ids=[i for i, f in zip(FLAVOUR_IDS, FLAVOURS, strict=True) if f[0] in ("mimviewer", "openstl-lightning")],
)
@HOSTILE
@given(
    fields=st.dictionaries(st.sampled_from(CONFIG_NAMES) | st.text(max_size=10), JSON, min_size=1, max_size=4)
)
def test_checkpoints_stating_any_config_values(flavour, source, channels, fields, tmp_path) -> None:
    from mimviewer.checkpoints import load_checkpoint

    weights, extra = read_weights(flavour, source)
    if flavour == "mimviewer":
        config = json.loads(extra["mimviewer.config"])
        config.update(fields)
        extra["mimviewer.config"] = json.dumps(config)
    else:
        extra["hyper_parameters"] = {**extra["hyper_parameters"], **fields}
    path = tmp_path / f"stated{source.suffix}"
    write_weights(flavour, path, weights, extra)
    only_our_errors("checkpoint-config", lambda: load_checkpoint(path, channels=channels))


# -- config files ------------------------------------------------------------------------------

BASE_PY = b"""method = 'PredRNN'
num_hidden = '64,64,64,64'
filter_size = 5
patch_size = 4
layer_norm = 0
pre_seq_length = 10
aft_seq_length = 10
in_shape = [10, 1, 64, 64]
"""
BASE_JSON = json.dumps({"arch": "predrnn", "num_hidden": [64, 64], "patch_size": 4, "pre": 10}).encode()


@HOSTILE
@given(data=st.data())
def test_config_files_mutated_or_holding_any_values(data, tmp_path) -> None:
    from mimviewer.checkpoints import read_config_file

    kind = data.draw(st.sampled_from(["py-bytes", "json-bytes", "py-values", "json-values"]))
    if kind == "py-bytes":
        name, content = "c.py", data.draw(mutated(BASE_PY))
    elif kind == "json-bytes":
        name, content = "c.json", data.draw(mutated(BASE_JSON))
    else:
        fields = data.draw(st.dictionaries(st.sampled_from(CONFIG_NAMES), JSON, max_size=5))
        if kind == "json-values":
            name, content = "c.json", json.dumps(fields).encode()
        else:
            name, content = "c.py", "".join(f"{k} = {v!r}\n" for k, v in fields.items()).encode()
    path = tmp_path / name
    path.write_bytes(content)
    only_our_errors(f"config-{kind}", lambda: read_config_file(path))


# -- every reader's input ------------------------------------------------------------------------


def _odim(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_2")
        f.create_group("what").attrs.update({"object": np.bytes_("COMP"), "date": np.bytes_("20240501")})
        for k in (1, 2, 3):
            ds = f.create_group(f"dataset{k}")
            ds.create_group("what").attrs.update(
                {"startdate": np.bytes_("20240501"), "starttime": np.bytes_(f"10{k:02d}00")}
            )
            data = ds.create_group("data1")
            data.create_dataset("data", data=np.full((8, 8), 10 * k, np.uint8))
            data.create_group("what").attrs.update(
                {
                    "quantity": np.bytes_("DBZH"),
                    "gain": 0.5,
                    "offset": -32.0,
                    "nodata": 255.0,
                    "undetect": 0.0,
                }
            )


def _inputs(folder: Path) -> dict[str, Path]:
    """One small valid file (or folder) per reader."""
    import h5py
    import imageio.v2 as imageio

    frames = (np.random.default_rng(0).random((4, 1, 8, 8)) * 255).astype(np.uint8)
    np.save(folder / "a.npy", frames)
    np.savez(folder / "stored.npz", frames=frames)
    np.savez_compressed(folder / "deflated.npz", frames=frames)
    with h5py.File(folder / "array.h5", "w") as f:
        f["frames"] = frames[:, 0]
    _odim(folder / "radar.h5")
    (folder / "pngs").mkdir()
    for t in range(3):
        imageio.imwrite(folder / "pngs" / f"f{t}.png", frames[t, 0])
    imageio.mimwrite(folder / "v.gif", frames[:, 0], duration=100, loop=0)
    return {
        "npy": folder / "a.npy",
        "npz-stored": folder / "stored.npz",
        "npz-deflated": folder / "deflated.npz",
        "hdf5": folder / "array.h5",
        "odim": folder / "radar.h5",
        "png": folder / "pngs" / "f1.png",
        "gif": folder / "v.gif",
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return _inputs(tmp_path_factory.mktemp("inputs"))


@pytest.mark.parametrize(
    "kind", ["npy", "npz-stored", "npz-deflated", "hdf5", "odim", "png", "gif", "predict-npy"]
)
@HOSTILE
@given(data=st.data())
def test_every_readers_input_mutated(kind, inputs, data, tmp_path) -> None:
    from mimviewer.commands.predict import read_input
    from mimviewer.data import open_sequence

    source = inputs["npy" if kind == "predict-npy" else kind]
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    if kind == "png":  # one frame of a folder of images is damaged
        target = tmp_path / "pngs"
        shutil.copytree(source.parent, target)
        (target / source.name).write_bytes(data.draw(mutated(source.read_bytes())))
        opened = target
    else:
        opened = tmp_path / source.name
        opened.write_bytes(data.draw(mutated(source.read_bytes())))

    def read() -> None:
        if kind == "predict-npy":
            for sequence in read_input(opened).sequences:
                sequence.frames(0, 2)
            return
        seq = open_sequence(opened)
        seq.frames(0, 3)
        seq.frames(len(seq) - 1)

    only_our_errors(f"reader-{kind}", read)


@HOSTILE
@given(
    shape=st.lists(st.integers(0, 2**40), max_size=7),
    dtype=st.sampled_from(["<f4", ">f8", "|u1", "<i8", "|b1", "<c8", "|S3", "<U2", "<m8", "|V4"]),
    fortran=st.booleans(),
)
def test_npy_headers_declaring_any_shape_or_dtype(shape, dtype, fortran, tmp_path) -> None:
    """A header is a promise the data must keep: 2**40-long axes over 64 bytes are refused, not mapped."""
    from mimviewer.data import open_sequence

    header = {"descr": dtype, "fortran_order": fortran, "shape": tuple(shape)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "declared.npy"
    path.write_bytes(np.lib.format.magic(1, 0) + buffer.getvalue() + bytes(64))

    def read() -> None:
        seq = open_sequence(path)
        seq.frames(0, 2)

    only_our_errors("reader-npy-header", read)


# -- training files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from mimviewer.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        arch="convlstm", model={"num_hidden": (4,), "filter_size": 3, "patch_size": 4, "pre": 2, "aft": 2},
        size=16, steps=2, batch_size=2, val_sequences=2, val_every=100, checkpoint_every=2,
    )  # fmt: skip
    train(cfg, folder, log=lambda _: None)
    return folder


TRAIN_NAMES = [
    "arch", "model", "data", "size", "steps", "batch_size", "lr", "weight_decay", "schedule", "warmup",
    "clip", "loss", "sampling", "sampling_stop", "sampling_start", "aux_weight", "val_every",
    "val_sequences", "checkpoint_every", "seed",
]  # fmt: skip


@HOSTILE
@given(data=st.data())
def test_train_json_mutated_or_holding_any_values(run_dir, data) -> None:
    from mimviewer.train import TrainConfig

    base = (run_dir / "train.json").read_text()
    if data.draw(st.booleans(), label="bytes"):
        text = data.draw(mutated(base.encode())).decode("utf-8", errors="replace")
    else:
        recipe = json.loads(base)
        recipe.update(data.draw(st.dictionaries(st.sampled_from(TRAIN_NAMES), JSON, max_size=4)))
        text = json.dumps(recipe)
    only_our_errors("train-json", lambda: TrainConfig.from_json(text, source="train.json"))


@HOSTILE
@given(data=st.data())
def test_train_state_mutated_or_holding_any_values(run_dir, data, tmp_path) -> None:
    from mimviewer.resume import read_state

    path = tmp_path / "train_state.pt"
    base = (run_dir / "train_state.pt").read_bytes()
    how = data.draw(st.sampled_from(["bytes", "pickle", "values"]))
    if how == "bytes":
        path.write_bytes(data.draw(mutated(base)))
    elif how == "pickle":
        path.write_bytes(mutate_zip_pickle(data.draw, base))
    else:
        state = torch.load(io.BytesIO(base), weights_only=True)
        key = data.draw(st.sampled_from(["step", "losses", "wall_s", "mask_rng", "optimizer", "model"]))
        state[key] = data.draw(JSON)
        torch.save(state, path)
    only_our_errors("train-state", lambda: read_state(path))


# -- a few as separate processes under RLIMIT_AS -------------------------------------------------


def test_mutated_checkpoints_in_processes_under_an_address_space_limit(tmp_path, fork_server) -> None:
    """Eight mutants (a fixed seed), each read by `mimviewer info` in its own process."""
    rng = random.Random(9)
    for i in range(8):
        _, source, channels = FLAVOURS[i % len(FLAVOURS)]
        content = bytearray(source.read_bytes())
        for _ in range(3):
            content[rng.randrange(min(len(content), 4096))] = rng.randrange(256)
        path = tmp_path / f"m{i}{source.suffix}"
        path.write_bytes(bytes(content))
        argv = ["info", str(path), "--channels", str(channels)]
        result = fork_server.run(argv, tmp_path, as_bytes=fork_server.vm + MEMORY_SLACK)
        assert result["code"] in (0, 2), result
        assert "Traceback" not in result["stderr"] and len(result["stderr"].strip().splitlines()) <= 1
        CASES_RUN["checkpoint-process"] = CASES_RUN.get("checkpoint-process", 0) + 1
