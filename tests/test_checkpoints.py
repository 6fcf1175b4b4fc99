"""Checkpoints: every flavour loads, configs are inferred or read as data, nothing unsafe runs."""

from __future__ import annotations

import argparse
import os
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from mimviewer.checkpoints import (
    describe_checkpoint,
    detect_arch,
    load_checkpoint,
    read_config_file,
    save_checkpoint,
)
from mimviewer.errors import CheckpointError, ConfigError, ShapeError
from mimviewer.nets import create_model

OPENSTL_CONFIG = Path("/tmp/openstl/configs/mmnist/PredRNN.py")


def tiny(arch: str = "predrnn", **changes):
    fields = dict(num_hidden=(8, 8), filter_size=3, patch_size=2, height=16, width=12, pre=3, aft=2)
    fields.update(changes)
    return create_model(arch, **fields)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# -- our own format ------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["convlstm", "mim", "lstmp"])
def test_our_format_round_trips_bitwise_with_config_and_metadata(arch: str, tmp_path: Path) -> None:
    options = {"proj": [5, 6]} if arch == "lstmp" else {}
    model = tiny(arch, layer_norm=True, channels=2, units="dBZ", options=options)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, {"trained_on": "radar storms", "epochs": "3"})
    loaded = load_checkpoint(path)
    assert loaded.format == "mimviewer"
    assert loaded.config == model.config
    assert loaded.metadata == {"trained_on": "radar storms", "epochs": "3"}
    assert_same_weights(model, loaded.model)
    # Saving what was loaded gives the very same bytes.
    save_checkpoint(tmp_path / "again.safetensors", loaded.model, loaded.metadata)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a.safetensors", tiny())
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def test_metadata_cannot_overwrite_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reserved"):
        save_checkpoint(tmp_path / "a.safetensors", tiny(), {"mimviewer.config": "{}"})


def test_plain_safetensors_weights_are_inferred_too(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny("predrnn_v2", layer_norm=True)
    save_file(model.state_dict(), tmp_path / "weights.safetensors")
    loaded = load_checkpoint(tmp_path / "weights.safetensors")
    assert loaded.format == "safetensors"
    assert (loaded.config.arch, loaded.config.height, loaded.config.width) == ("predrnn_v2", 16, 12)
    assert_same_weights(model, loaded.model)


# -- flavours and prefixes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrap", "fmt"),
    [
        (lambda sd: sd, "state-dict"),
        (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "state-dict"),
        (lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 2}, "training-state"),
        (
            lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}},
            "training-state",
        ),
        (lambda sd: {"net_param": sd}, "predrnn-original"),
        (
            lambda sd: {
                "state_dict": {f"model.{k}": v for k, v in sd.items()},
                "pytorch-lightning_version": "2",
            },
            "openstl-lightning",
        ),
    ],
)
def test_every_pickled_flavour_loads_the_same_weights(wrap, fmt: str, tmp_path: Path) -> None:
    model = tiny(layer_norm=True)
    path = tmp_path / "model.pth"
    torch.save(wrap(model.state_dict()), path)
    loaded = load_checkpoint(path)
    assert loaded.format == fmt
    assert loaded.config.arch == "predrnn"
    assert_same_weights(model, loaded.model)


# -- config inference -----------------------------------------------------------------------

CASES = {
    "convlstm": dict(num_hidden=(8, 6, 4)),
    "predrnn": dict(num_hidden=(6, 6)),
    "predrnn_v2": dict(num_hidden=(6, 6)),
    "predrnn_pp": dict(num_hidden=(8, 6)),
    "mim": dict(num_hidden=(6, 6, 6)),
    "e3d_lstm": dict(num_hidden=(6, 4)),
    "lstm": dict(num_hidden=(16, 8), options={"embed": 24}),
    "lstmp": dict(num_hidden=(16, 8), options={"proj": [6, 5]}),
    "sru": dict(num_hidden=(16, 8)),
}


ONE_D = ("lstm", "lstmp", "sru")  # vector cells: no convolutions, no LayerNorm


@pytest.mark.parametrize(
    ("arch", "layer_norm"),
    [(a, ln) for a in sorted(CASES) for ln in (False, True) if not (ln and a in ONE_D)],
)
def test_config_is_inferred_from_the_weights(arch: str, layer_norm: bool, tmp_path: Path) -> None:
    is_1d = arch in ONE_D
    model = tiny(arch, layer_norm=layer_norm, channels=3, **CASES[arch])
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)  # weights only: no config anywhere in the file
    assert detect_arch(model.state_dict()) == arch

    # The input's frame size is what predict passes; the 1-D family cannot tell its patch size.
    overrides = {"patch_size": 2} if is_1d else None
    loaded = load_checkpoint(path, channels=3, frame_size=(16, 12), overrides=overrides)
    expected, got = model.config, loaded.config
    assert got.arch == arch
    assert got.num_hidden == expected.num_hidden
    assert got.patch_size == expected.patch_size
    assert got.channels == 3
    assert (got.height, got.width) == (16, 12)
    assert got.options == expected.options
    if not is_1d:
        assert got.filter_size == expected.filter_size
        assert got.layer_norm == layer_norm
    assert_same_weights(model, loaded.model)
    frames = torch.rand(1, 4, 3, 16, 12)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(frames, 3, 2), model.eval()(frames, 3, 2), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["convlstm", "mim", "e3d_lstm"])
def test_frame_size_comes_from_layernorm_or_peephole_shapes(arch: str, tmp_path: Path) -> None:
    model = tiny(arch, layer_norm=arch == "convlstm", patch_size=4, height=24, width=32, num_hidden=(4, 4))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    loaded = load_checkpoint(tmp_path / "w.pth")  # no hint at all
    assert (loaded.config.height, loaded.config.width, loaded.config.patch_size) == (24, 32, 4)
    assert loaded.frame_size_fixed
    with pytest.raises(ShapeError, match=r"expects 24x32 frames.*input has 16x16"):
        load_checkpoint(tmp_path / "w.pth", frame_size=(16, 16))
    with pytest.raises(ShapeError, match=r"expects 24x32 frames.*input has 16x16"):
        load_checkpoint(tmp_path / "w.pth", overrides={"height": 16, "width": 16})


def test_without_layernorm_the_frame_size_is_the_inputs(tmp_path: Path) -> None:
    torch.save(tiny("convlstm").state_dict(), tmp_path / "w.pth")
    loaded = load_checkpoint(tmp_path / "w.pth", frame_size=(20, 8))
    assert not loaded.frame_size_fixed
    assert (loaded.config.height, loaded.config.width) == (20, 8)
    with pytest.raises(
        ShapeError, match=r"input's frames \(15x8\) are not divisible by the patch size 2 of .*w\.pth"
    ):
        load_checkpoint(tmp_path / "w.pth", frame_size=(15, 8))


def test_explicit_overrides_win_and_a_wrong_one_names_the_keys(tmp_path: Path) -> None:
    torch.save(tiny("convlstm").state_dict(), tmp_path / "w.pth")
    loaded = load_checkpoint(tmp_path / "w.pth", overrides={"pre": 7, "aft": 5, "units": "dBZ"})
    assert (loaded.config.pre, loaded.config.aft, loaded.config.units) == (7, 5, "dBZ")
    with pytest.raises(CheckpointError, match=r"w\.pth.*shape mismatch: cell_list\.0\.conv_h\.0\.weight"):
        load_checkpoint(tmp_path / "w.pth", overrides={"num_hidden": (16, 8)})
    with pytest.raises(CheckpointError, match=r"w\.pth.*missing keys: .*conv_m"):
        load_checkpoint(tmp_path / "w.pth", overrides={"arch": "predrnn"})


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = tiny().state_dict()
    del state["cell_list.1.conv_m.0.weight"]
    state["cell_list.0.extra_thing.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "w.pth")
    message = str(info.value)
    assert "w.pth" in message
    assert "missing keys: cell_list.1.conv_m.0.weight" in message
    assert "unexpected keys: cell_list.0.extra_thing.weight" in message


def test_unknown_architecture_is_refused_by_name(tmp_path: Path) -> None:
    torch.save(
        {"encoder.0.weight": torch.zeros(4, 4), "decoder.bias": torch.zeros(4)}, tmp_path / "simvp.pth"
    )
    with pytest.raises(CheckpointError, match=r"simvp\.pth: unknown architecture"):
        load_checkpoint(tmp_path / "simvp.pth")


# -- OpenSTL config files, read as data ----------------------------------------------------


def test_openstl_config_file_is_read_as_data(tmp_path: Path) -> None:
    config = tmp_path / "PredRNN.py"
    config.write_text(
        "method = 'PredRNN'\n# model\nnum_hidden = '8,8'\nfilter_size = 3\nstride = 1\n"
        "patch_size = 2\nlayer_norm = 0\nlr = 5e-4\nbatch_size = 16\nsched = 'onecycle'\n"
    )
    assert read_config_file(config) == dict(
        arch="predrnn", num_hidden=(8, 8), filter_size=3, stride=1, patch_size=2, layer_norm=False
    )
    torch.save(tiny(channels=4, patch_size=1).state_dict(), tmp_path / "w.pth")
    # p*p*C = 4 is ambiguous (p=2, C=1 or p=1, C=4); the weights alone guess C=1, the file says p=2...
    assert load_checkpoint(tmp_path / "w.pth", frame_size=(16, 12)).config.patch_size == 2
    # ...and a config that says p=1 is believed: C becomes 4.
    config.write_text(config.read_text().replace("patch_size = 2", "patch_size = 1"))
    loaded = load_checkpoint(tmp_path / "w.pth", config_file=config, frame_size=(16, 12))
    assert (loaded.config.patch_size, loaded.config.channels) == (1, 4)


def test_openstl_e3d_config_does_not_override_its_fixed_kernel(tmp_path: Path) -> None:
    config = tmp_path / "E3DLSTM.py"
    config.write_text("method = 'E3DLSTM'\nnum_hidden = '4,4'\nfilter_size = 3\npatch_size = 4\n")
    assert "filter_size" not in read_config_file(config)  # OpenSTL always builds (2, 5, 5) kernels


@pytest.mark.skipif(not OPENSTL_CONFIG.exists(), reason="no OpenSTL checkout")
def test_a_real_openstl_config_reads() -> None:
    fields = read_config_file(OPENSTL_CONFIG)
    assert fields["arch"] == "predrnn" and fields["num_hidden"] == (128, 128, 128, 128)


@pytest.mark.parametrize(
    "line",
    [
        "num_hidden = __import__('os').system('touch {marker}')",
        "import os; os.system('touch {marker}')",
        "open('{marker}', 'w')",
    ],
)
def test_a_config_file_with_code_is_refused_and_not_run(line: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "evil.py"
    config.write_text("method = 'PredRNN'\n" + line.format(marker=marker) + "\n")
    with pytest.raises(ConfigError, match=r"evil\.py:2"):
        read_config_file(config)
    assert not marker.exists()


# -- unsafe, corrupt and wrong files ------------------------------------------------------


class _Exploit:
    """Unpickling this would create the marker file (the test shows it is never created)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(writer: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "innocent.ckpt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": _Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(CheckpointError, match=r"innocent\.ckpt: refused to load.*open"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        describe_checkpoint(path)
    assert not marker.exists()


def lightning_training_file(model) -> dict:
    """What a real Lightning .ckpt carries beside the weights: optimizer, scheduler, numpy, paths."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10)
    return {
        "epoch": 4,
        "global_step": 40,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "optimizer_states": [optimizer.state_dict()],
        # Old torch stored OneCycleLR's anneal function as a bound method (pickled via getattr).
        "lr_schedulers": [{"scheduler": scheduler, "anneal_func": scheduler._annealing_cos}],
        "callbacks": {"ModelCheckpoint": {"dirpath": Path("/runs/ckpts"), "best": np.float64(0.01)}},
        "loops": defaultdict(int, {"fit_loop": 1}),
        "hyper_parameters": argparse.Namespace(
            method="ConvLSTM", num_hidden="8,8", patch_size=2, in_shape=[8, 1, 16, 12]
        ),
    }


def test_lightning_training_state_beside_the_weights_is_skipped_not_run(tmp_path: Path) -> None:
    model = tiny("convlstm")
    path = tmp_path / "epoch=4.ckpt"
    torch.save(lightning_training_file(model), path)
    loaded = load_checkpoint(path)
    assert loaded.format == "openstl-lightning"
    assert (loaded.config.height, loaded.config.width) == (16, 12)  # from the Namespace hyper-parameters
    assert loaded.metadata["epoch"] == "4"
    assert_same_weights(model, loaded.model)


def test_an_exploit_hidden_among_training_state_is_still_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = lightning_training_file(tiny("convlstm"))
    payload["callbacks"]["Evil"] = _Exploit(marker)
    torch.save(payload, tmp_path / "epoch=4.ckpt")
    with pytest.raises(CheckpointError, match=r"epoch=4\.ckpt: refused to load.*\bopen\)"):
        load_checkpoint(tmp_path / "epoch=4.ckpt")
    assert not marker.exists()


def _good_bytes(tmp_path: Path) -> bytes:
    torch.save(tiny().state_dict(), tmp_path / "good.pth")
    return (tmp_path / "good.pth").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.pth", lambda good: b"", "empty"),
        ("truncated.pth", lambda good: good[: len(good) // 2], "corrupt, truncated"),
        ("notes.ckpt", lambda good: b"epoch 3: loss 0.01\n" * 20, "corrupt, truncated"),
        ("noise.pth", lambda good: os.urandom(4096), "corrupt, truncated|refused"),
        ("half.safetensors", None, "corrupt or truncated safetensors"),
        ("list.pth", lambda good: None, "not a checkpoint"),
    ],
)
def test_corrupt_and_wrong_files_name_the_file_and_the_problem(
    name, content, problem, tmp_path: Path
) -> None:
    path = tmp_path / name
    if name == "half.safetensors":
        save_checkpoint(path, tiny())
        path.write_bytes(path.read_bytes()[:-100])
    elif name == "list.pth":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(content(_good_bytes(tmp_path)))
    with pytest.raises(CheckpointError, match=problem) as info:
        load_checkpoint(path)
    assert name in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothere\.pth: no such file"):
        load_checkpoint(tmp_path / "nothere.pth")


def test_describe_names_format_architecture_config_and_size(tmp_path: Path) -> None:
    model = tiny("mim", num_hidden=(4, 4), layer_norm=True)
    save_checkpoint(tmp_path / "m.safetensors", model, {"note": "demo"})
    text = describe_checkpoint(tmp_path / "m.safetensors")
    params = sum(p.numel() for p in model.parameters())
    for expected in (
        "mimviewer",
        "mim",
        "hidden 4,4",
        "3x3",
        "layer norm:   yes",
        f"{params:,}",
        "note: demo",
    ):
        assert expected in text
    assert "16x12 (fixed by the weights)" in text
