"""``mimviewer attribute`` and ``mimviewer whatif`` end to end on a tiny checkpoint."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from mimviewer.attribution import Attribution
from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.data.synthetic import bouncing_digits
from mimviewer.nets import create_model
from mimviewer.whatif import EditList, Erase, Shift

PRE, AFT = 3, 2


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    model = create_model(
        "predrnn", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16, pre=PRE, aft=AFT
    )
    save_checkpoint(tmp_path / "tiny.safetensors", model)
    np.save(tmp_path / "seq.npy", bouncing_digits(1, length=PRE + AFT, size=16, num_digits=1, seed=5)[0])
    return tmp_path


def test_attribute_npz_png_gif(files, capsys) -> None:
    ckpt, seq = str(files / "tiny.safetensors"), str(files / "seq.npy")
    args = [ckpt, seq, "--region", "4,4,12,12", "--frame", "4", "--method", "ig", "--steps", "4"]
    assert main(["attribute", *args, "-o", str(files / "a.npz")]) == 0
    result = Attribution.load(files / "a.npz")
    assert result.maps.shape == (PRE, 1, 16, 16) and result.frame == 4 and result.mask.sum() == 64
    assert result.memory is not None and result.meta["checkpoint"] == ckpt
    out = capsys.readouterr().out
    assert "completeness" in out and "per context frame" in out
    assert main(["attribute", *args, "--baseline", "blur", "-o", str(files / "a.png")]) == 0
    image = imageio.imread(files / "a.png")
    assert image.ndim == 3 and image.shape[1] > 300
    assert main(["attribute", ckpt, seq, "--method", "saliency", "-o", str(files / "a.gif")]) == 0
    assert len(imageio.mimread(files / "a.gif")) == PRE  # one picture per context frame


def test_attribute_errors_are_one_line(files, capsys) -> None:
    ckpt, seq = str(files / "tiny.safetensors"), str(files / "seq.npy")
    assert main(["attribute", ckpt, seq, "--region", "0,0,99,4", "-o", str(files / "a.npz")]) == 2
    assert "outside the 16x16 frame" in capsys.readouterr().err
    assert main(["attribute", ckpt, seq, "-o", str(files / "a.txt")]) == 2
    assert ".npz, .png, .gif" in capsys.readouterr().err
    assert not (files / "a.npz").exists()


def test_whatif_gif_and_bad_edits(files, capsys) -> None:
    ckpt, seq = str(files / "tiny.safetensors"), str(files / "seq.npy")
    EditList([Erase(1, ((8.0, 8.0),), 3.0), Shift(2, 2, 0)]).save(files / "edits.json")
    assert main(["whatif", ckpt, seq, "--edits", str(files / "edits.json"), "-o", str(files / "w.gif")]) == 0
    frames = imageio.mimread(files / "w.gif")
    assert len(frames) == PRE + AFT
    assert "2 edit(s)" in capsys.readouterr().out
    EditList([Shift(7, 1, 0)]).save(files / "bad.json")
    assert main(["whatif", ckpt, seq, "--edits", str(files / "bad.json"), "-o", str(files / "w2.gif")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "frame 7 is not a context frame" in err and err.count("\n") == 1
    assert not (files / "w2.gif").exists()


def test_attribute_with_a_mask_file(files, capsys) -> None:
    ckpt, seq = str(files / "tiny.safetensors"), str(files / "seq.npy")
    mask = np.zeros((16, 16), bool)
    mask[2:5, 3:12] = True
    mask[10, 10] = True
    np.save(files / "mask.npy", mask)
    out = str(files / "m.npz")
    assert (
        main(["attribute", ckpt, seq, "--mask", str(files / "mask.npy"), "--method", "ixg", "-o", out]) == 0
    )
    np.testing.assert_array_equal(Attribution.load(out).mask, mask)
    np.save(files / "small.npy", mask[:8])
    assert main(["attribute", ckpt, seq, "--mask", str(files / "small.npy"), "-o", out]) == 2
    assert "small.npy: the mask is (16, 8)" in capsys.readouterr().err
