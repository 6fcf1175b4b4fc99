"""Gate variants from the command line: `mimviewer train --peephole --cifg --layer-norm` builds them,
the recipe reproduces the flags, and the saved checkpoint says which variant it is."""

import json

import pytest
import torch

from mimviewer.checkpoints import describe_checkpoint, load_checkpoint
from mimviewer.cli import build_parser, main
from mimviewer.train import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "arch, flags, options, layer_norm",
    [
        ("convlstm", ["--peephole"], {"peephole": True}, False),
        ("lstm", ["--peephole", "--cifg", "--layer-norm"], {"peephole": True, "cifg": True}, True),
        ("lstmp", ["--cifg"], {"cifg": True, "proj": 128}, False),
    ],
)
def test_train_flags_build_the_variant_and_the_recipe_repeats_them(
    tmp_path, capsys, arch, flags, options, layer_norm
):
    run_dir = tmp_path / "run"
    args = ["train", "--arch", arch, "--num-hidden", "4", "--filter-size", "3", "--size", "16", *flags]
    args += ["--pre", "2", "--aft", "2", "--steps", "1", "--batch-size", "2", "--val-every", "5"]
    args += ["--val-sequences", "2", "--out", str(run_dir)]
    assert main(args) == 0
    capsys.readouterr()
    loaded = load_checkpoint(run_dir / "model.safetensors")
    assert loaded.config.options == options and loaded.config.layer_norm is layer_norm
    info = describe_checkpoint(run_dir / "model.safetensors")
    assert "variant:" in info and all(name in info for name in options if name != "proj")
    recipe = TrainConfig.from_json((run_dir / "train.json").read_text())
    given = vars(build_parser().parse_args(args))
    assert vars(build_parser().parse_args(recipe.command(str(run_dir)).split()[1:])) == given
    assert json.loads((run_dir / "train.json").read_text())["model"]["options"] == {
        k: v for k, v in options.items() if k != "proj"
    }


# -- the variant read from the weights alone (no config in the file) ----------------------------

WEIGHTS_ONLY = [
    ("mim_paper", dict(num_hidden=(4, 4, 4)), {}, False, "as in the paper"),
    ("mim_paper", dict(num_hidden=(4, 4), layer_norm=True), {}, True, "as in the paper"),
    ("mim", dict(num_hidden=(4, 4)), {}, False, "as released"),
    ("convlstm", dict(num_hidden=(4, 5)), {"peephole": True}, False, "peephole (Shi"),
    ("convlstm", dict(num_hidden=(4, 5), layer_norm=True), {}, True, "plain"),
    ("lstm", dict(num_hidden=(6, 5)), {"peephole": True, "cifg": True}, True, "peephole, CIFG"),
    ("lstm", dict(num_hidden=(6, 5)), {"cifg": True}, False, "CIFG (i = 1 - f)"),
    ("lstm", dict(num_hidden=(6, 5)), {}, True, "layer-normalised gates"),
    ("lstmp", dict(num_hidden=(6, 5)), {"proj": [3, 4], "peephole": True}, False, "peephole, projection"),
    ("lstmp", dict(num_hidden=(6, 5)), {"proj": [3, 4], "cifg": True}, True, "CIFG"),
]


@pytest.mark.parametrize("arch, sizes, options, layer_norm, says", WEIGHTS_ONLY)
def test_the_variant_is_read_from_weights_without_a_config(tmp_path, arch, sizes, options, layer_norm, says):
    from mimviewer.nets import create_model

    fields = dict(filter_size=3, patch_size=2, height=8, width=12, pre=3, aft=2, **sizes)
    fields["layer_norm"] = layer_norm
    model = create_model(arch, options=options, **fields)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)  # weights only: the variant must come from the key names
    hints = {"overrides": {"patch_size": 2}} if arch.startswith("lstm") else {}
    loaded = load_checkpoint(path, channels=1, frame_size=(8, 12), **hints)
    assert loaded.config.arch == arch
    assert loaded.config.options == model.config.options
    assert loaded.config.layer_norm == layer_norm and loaded.config.num_hidden == model.config.num_hidden
    frames = torch.rand(2, 5, 1, 8, 12)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(frames, 3, 2), model.eval()(frames, 3, 2), rtol=0, atol=0)
    if not arch.startswith("lstm"):  # the 1-D family needs its patch size stated; info cannot give it
        assert says in describe_checkpoint(path, channels=1)
    else:
        from mimviewer.nets.variants import describe_variant

        assert says in describe_variant(loaded.config)


def test_peephole_weights_fix_the_frame_size(tmp_path):
    from mimviewer.errors import ShapeError
    from mimviewer.nets import create_model

    model = create_model(
        "convlstm",
        num_hidden=(4,),
        filter_size=3,
        patch_size=4,
        height=24,
        width=32,
        options={"peephole": True},
    )
    torch.save(model.state_dict(), tmp_path / "w.pth")
    loaded = load_checkpoint(tmp_path / "w.pth", channels=1)
    assert (loaded.config.height, loaded.config.width) == (24, 32) and loaded.frame_size_fixed
    with pytest.raises(ShapeError, match="expects 24x32"):
        load_checkpoint(tmp_path / "w.pth", channels=1, frame_size=(16, 16))


def test_predict_flags_add_a_variant_to_the_files_options(tmp_path, capsys):
    """--peephole on the command line joins what the file says (here LSTMP's projection sizes)."""
    from mimviewer.nets import create_model

    model = create_model(
        "lstmp", num_hidden=(6, 5), patch_size=2, height=8, width=12, pre=3, aft=2, options={"proj": [3, 4]}
    )
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    loaded = load_checkpoint(
        tmp_path / "plain.pth", channels=1, frame_size=(8, 12), overrides={"patch_size": 2}
    )
    assert loaded.config.options == {"proj": [3, 4]}
    stated = {"patch_size": 2, "options": {"cifg": False, "peephole": False}}
    again = load_checkpoint(tmp_path / "plain.pth", channels=1, frame_size=(8, 12), overrides=stated)
    assert again.config.options == {"proj": [3, 4], "cifg": False, "peephole": False}
    frames = tmp_path / "frames.npy"
    import numpy as np

    np.save(frames, np.random.rand(5, 1, 8, 12).astype(np.float32))
    args = ["predict", str(tmp_path / "plain.pth"), str(frames), "-o", str(tmp_path / "out.npy")]
    assert main([*args, "--patch-size", "2", "--pre", "3", "--aft", "2"]) == 0
    # a variant the weights do not have is refused with the missing keys named
    assert main([*args, "--patch-size", "2", "--pre", "3", "--aft", "2", "--peephole"]) == 2
    assert "w_c" in capsys.readouterr().err
