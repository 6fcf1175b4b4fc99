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
