"""Checkpoints that lie about their sizes, hold the wrong dtype or non-finite weights, or cannot be read.

Every flavour (OpenSTL Lightning, the original code's files, plain .pth, our safetensors)
is changed the same way; each must be refused as one CheckpointError naming the file,
before any model is built at its claimed size.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from hostile_files import FLAVOUR_IDS, FLAVOURS, biggest_conv, read_weights, rewrite, stated_config

from mimviewer import checkpoint_guard, checkpoints
from mimviewer.checkpoints import load_checkpoint, read_config_file
from mimviewer.errors import CheckpointError, ConfigError, MimviewerError


@pytest.fixture(autouse=True)
def no_model_at_full_size(monkeypatch):
    """Fail a test that builds a model off the meta device from a file that should be refused first."""
    built: list[str] = []
    real = checkpoints.load.create_model

    def create_model(config, **overrides):
        if torch.empty(0).device.type != "meta":
            built.append(config.arch)
        return real(config, **overrides)

    monkeypatch.setattr(checkpoints.load, "create_model", create_model)
    return built


def load(path: Path, channels: int) -> None:
    load_checkpoint(path, channels=channels)


WRONG_DTYPES = [(torch.int64, "int64|I64"), (torch.bool, "bool|BOOL"), (torch.complex64, "complex64")]
# safetensors files cannot hold complex tensors (the library refuses to write them): a
# hand-made header with C64 is tested below instead.
DTYPE_CASES = [
    (*flavour, *dtype)
    for flavour in FLAVOURS
    for dtype in WRONG_DTYPES
    if not (dtype[0] == torch.complex64 and flavour[1].suffix == ".safetensors")
]


@pytest.mark.parametrize(("flavour", "source", "channels", "dtype", "said"), DTYPE_CASES)
def test_weights_of_a_non_float_dtype_are_refused_not_cast(
    flavour, source, channels, dtype, said, tmp_path, no_model_at_full_size
) -> None:

    def change(weights, _extra):
        key = biggest_conv(weights)
        weights[key] = (weights[key] * 100).to(dtype)

    path = rewrite(flavour, source, tmp_path / "wrong", change)
    with pytest.raises(CheckpointError, match=said) as info:
        load(path, channels)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not no_model_at_full_size


@pytest.mark.parametrize(("flavour", "source", "channels"), FLAVOURS, ids=FLAVOUR_IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(
    flavour, source, channels, bad, tmp_path, no_model_at_full_size
) -> None:
    def change(weights, _extra):
        key = biggest_conv(weights)
        weights[key] = weights[key].clone()
        weights[key].view(-1)[3] = bad

    path = rewrite(flavour, source, tmp_path / "nonfinite", change)
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        load(path, channels)
    assert str(path) in str(info.value)
    assert not no_model_at_full_size


@pytest.mark.parametrize(
    ("flavour", "source", "channels"), [f for f in FLAVOURS if f[1].suffix != ".safetensors"],
    ids=[i for i, f in zip(FLAVOUR_IDS, FLAVOURS, strict=True) if f[1].suffix != ".safetensors"],
)  # fmt: skip
def test_a_tiny_pickle_whose_tensors_declare_hidden_6000_is_refused_before_allocating(
    flavour, source, channels, tmp_path, no_model_at_full_size
) -> None:
    """Stride-0 'expand' views: a few KB on disk, 14 GB once materialised."""

    def change(weights, _extra):
        for key, value in list(weights.items()):
            if isinstance(value, torch.Tensor) and value.ndim >= 4:
                weights[key] = torch.zeros(1).expand(value.shape[0] * 400, *value.shape[1:])

    path = rewrite(flavour, source, tmp_path / "expand", change)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="stride-0") as info:
        load(path, channels)
    assert str(path) in str(info.value)
    assert not no_model_at_full_size


@pytest.mark.parametrize("name", ["convlstm_digits", "mim_storms"])
@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("num_hidden", [6000, 6000, 6000, 6000], "do not fit|would need"),
        ("aft", 10**9, "aft must be in 1..10000"),
        ("patch_size", 0, "patch_size must be in 1..64"),
        ("channels", 10**9, "channels must be in 1..64"),
        ("filter_size", "3", None),  # a number as text: read as the number, loads
        ("filter_size", [5], "filter_size must be a whole number"),
        ("height", 1.5, "height must be a whole number"),
        ("arch", "x" * 1_000_000, "arch must be a name of at most 64 characters"),
        ("options", {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}, "nested deeper"),
    ],
)
def test_our_safetensors_config_is_checked_before_the_model_is_built(
    name, field, value, said, tmp_path, no_model_at_full_size
) -> None:
    from hostile_files import MODELS

    def change(_weights, extra):
        config = stated_config(extra)
        config[field] = value
        extra["mimviewer.config"] = json.dumps(config)

    path = rewrite("mimviewer", MODELS / f"{name}.safetensors", tmp_path / "config", change)
    if said is None:
        assert load_checkpoint(path).config.filter_size == 3
        return
    with pytest.raises(CheckpointError, match=said) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and len(message) < 400  # a 1 MB name is never echoed back
    assert not no_model_at_full_size


def test_a_zip_pickle_that_inflates_beyond_memory_is_refused_from_its_directory(
    tmp_path, monkeypatch
) -> None:
    """A 64 MiB member deflated to a few KB, on a machine said to hold 32 MiB: nothing is inflated."""
    source = tmp_path / "model.pth"
    torch.save(read_weights("state-dict", FLAVOURS[3][1])[0], source)
    with zipfile.ZipFile(source, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/data/bomb", bytes(64 << 20))
    assert source.stat().st_size < 2 << 20
    monkeypatch.setenv("MIMVIEWER_MEMORY_LIMIT", str(32 << 20))
    with pytest.raises(CheckpointError, match="its members inflated would need about 64 MiB"):
        load_checkpoint(source, channels=1)


def test_a_pickle_larger_than_a_state_dicts_is_refused_unread(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoint_guard, "MAX_PICKLE_BYTES", 100)
    with pytest.raises(CheckpointError, match=r"its pickle .*data.pkl' inflates to 1,"):
        load_checkpoint(FLAVOURS[3][1], channels=1)


def test_a_safetensors_tensor_of_complex_or_unknown_dtype_is_refused_from_its_header(tmp_path) -> None:
    for dtype, said in (("C64", "holds C64 values; weights must be floating point"), ("Q4", "unknown dtype")):
        header = json.dumps({"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, 16]}}).encode()
        path = tmp_path / f"{dtype}.safetensors"
        path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
        with pytest.raises(CheckpointError, match=said):
            load_checkpoint(path)


def test_a_safetensors_header_that_lies_about_its_length_is_refused(tmp_path) -> None:
    path = tmp_path / "lying.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(CheckpointError, match="header claims 1,000,000,000,000 bytes"):
        load_checkpoint(path)


@pytest.mark.parametrize("kind", ["checkpoint", "config", "npy"])
def test_permission_denied_is_said_as_such(kind, tmp_path, monkeypatch) -> None:
    """Injected (root reads any file, so chmod alone proves nothing here): opening raises EACCES."""
    from mimviewer.commands.predict import read_input

    path = {
        "checkpoint": FLAVOURS[6][1],
        "config": tmp_path / "c.json",
        "npy": tmp_path / "in.npy",
    }[kind]
    if kind != "checkpoint":
        path.write_text("{}")
    real_open = Path.open

    def refusing_open(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)
    run = {
        "checkpoint": lambda: load_checkpoint(path),
        "config": lambda: read_config_file(path),
        "npy": lambda: read_input(path),
    }[kind]
    with pytest.raises(MimviewerError, match="permission denied") as info:
        run()
    assert str(path) in str(info.value) and "corrupt" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("binary.py", bytes(range(256)) * 8, "binary, not UTF-8"),
        ("deep.json", b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
        ("deep.py", b"a = " + b"[" * 200_000 + b"]" * 200_000, "nested|not a Python config"),
        ("huge.json", b'{"x": "' + b"a" * (2 << 20) + b'"}', "is not a config file"),
        ("aft.py", b"method = 'convlstm'\naft_seq_length = 1000000000\n", "aft must be in 1..10000"),
        ("power.py", b"method = 'convlstm'\naft_seq_length = 10**9\n", "not a literal value"),
        ("nan.py", b"method = 'convlstm'\npatch_size = float('nan')\n", "not a literal value"),
        ("nan.json", b'{"patch_size": NaN}', "patch_size must be a whole number"),
        ("name.py", b"method = '" + b"x" * 1_000_000 + b"'\n", "is not a recurrent model"),
        ("hidden.py", b"num_hidden = '" + b"6," * 5000 + b"'\n", "num_hidden"),
        ("string.json", b'{"filter_size": "big"}', "filter_size must be a whole number"),
        ("zero.json", b'{"patch_size": 0}', "patch_size must be in 1..64"),
        ("list.json", b"[1, 2]", "expected a JSON object"),
    ],
)
def test_config_files_with_hostile_values_are_one_line(name, content, said, tmp_path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises((ConfigError, CheckpointError), match=said) as info:
        read_config_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400
