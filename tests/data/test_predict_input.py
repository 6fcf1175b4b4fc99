"""`mimviewer predict` reads every input the data readers do, not only .npy arrays."""

import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.data.synthetic import bouncing_digits
from mimviewer.nets import create_model

PRE, AFT = 3, 2


@pytest.fixture
def checkpoint(tmp_path):
    model = create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16, pre=PRE, aft=AFT
    )
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, model)
    return path


def predict(*argv: str) -> int:
    return main(["predict", *map(str, argv), "--device", "cpu"])


def test_png_folder_predicts_like_the_same_frames_as_npy(tmp_path, checkpoint):
    pixels = (bouncing_digits(1, length=PRE + 2, size=16, num_digits=1, seed=2)[0, :, 0] * 255).round()
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(pixels):
        imageio.imwrite(folder / f"frame{t + 1}.png", frame.astype(np.uint8))  # frame1 ... frame5
    np.save(tmp_path / "same.npy", pixels.astype(np.uint8)[:, None])  # (T, 1, H, W) uint8

    assert predict(checkpoint, folder, "-o", tmp_path / "from_png.npy") == 0
    assert predict(checkpoint, tmp_path / "same.npy", "-o", tmp_path / "from_npy.npy") == 0
    from_png, from_npy = np.load(tmp_path / "from_png.npy"), np.load(tmp_path / "from_npy.npy")
    assert from_png.shape == (AFT, 1, 16, 16)
    np.testing.assert_allclose(from_png, from_npy, atol=1e-6)


def test_colour_video_for_a_grey_model(tmp_path, checkpoint, capsys):
    video = np.zeros((6, 16, 16, 3), np.uint8)
    for t in range(6):
        video[t, 4:10, t : t + 6] = (200, 180, 40)
    imageio.mimwrite(tmp_path / "clip.mp4", video, fps=4, macro_block_size=16)

    assert predict(checkpoint, tmp_path / "clip.mp4", "-o", tmp_path / "out.npy") == 0
    assert "3 channel(s) -> 1 for the model (by luma)" in capsys.readouterr().out  # adapted as in view, said
    prediction = np.load(tmp_path / "out.npy")
    assert prediction.shape == (AFT, 1, 16, 16) and np.isfinite(prediction).all()


def test_unreadable_input_is_one_line_naming_the_file(tmp_path, checkpoint, capsys):
    (tmp_path / "frames.txt").write_text("1 2 3")
    assert predict(checkpoint, tmp_path / "frames.txt", "-o", tmp_path / "out.npy") == 2
    err = capsys.readouterr().err
    assert "frames.txt: unknown kind of file" in err and len(err.strip().splitlines()) == 1
