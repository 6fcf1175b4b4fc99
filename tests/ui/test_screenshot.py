"""Screenshots: `mimviewer demo` on a machine without a display, and `view --screenshot`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from mimviewer.cli import main


def assert_not_blank(png: Path) -> np.ndarray:
    image = iio.imread(png)[..., :3]
    assert image.shape[0] >= 600 and image.shape[1] >= 1000
    assert image.std() > 20
    packed = (image[..., 0].astype(np.int32) << 16) | (image[..., 1].astype(np.int32) << 8) | image[..., 2]
    assert len(np.unique(packed)) > 200  # views, curves, colour bars, text
    return image


def test_demo_without_a_display_writes_a_png_of_the_window(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["MIMVIEWER_CONFIG_DIR"] = str(tmp_path / "config")
    done = subprocess.run(
        [sys.executable, "-m", "mimviewer", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    png = tmp_path / "mimviewer-demo.png"
    assert "no display" in done.stderr and str(png) in done.stderr + done.stdout
    image = assert_not_blank(png)
    # the ground-truth view (top left) shows digits: bright strokes on a dark background
    top_left = image[: image.shape[0] // 2, : image.shape[1] // 4].mean(-1)
    assert (top_left > 200).sum() > 50 and (top_left < 30).sum() > 2000


def test_view_screenshot_renders_the_users_files(qtbot, tiny_files, tmp_path):
    sequence, checkpoint = tiny_files
    png = tmp_path / "shots" / "view.png"
    assert (
        main(
            [
                "view",
                str(sequence),
                "--checkpoint",
                str(checkpoint),
                "--screenshot",
                str(png),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert_not_blank(png)


def test_view_screenshot_of_a_broken_checkpoint_fails_cleanly(qtbot, tiny_files, tmp_path, capsys):
    sequence, _ = tiny_files
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"garbage")
    png = tmp_path / "view.png"
    assert main(["view", str(sequence), "--checkpoint", str(broken), "--screenshot", str(png)]) == 2
    assert "broken.ckpt" in capsys.readouterr().err
    assert not png.exists()


@pytest.mark.parametrize(
    ("device", "said"),
    [
        ("cuda:99", "no CUDA GPU is available here|does not exist"),  # no machine has 100 GPUs
        ("meta", "not supported"),
        ("mps", "not supported"),
    ],
)
def test_a_device_that_cannot_work_is_a_one_line_error(capsys, device, said):
    """Runs on every machine: devices that cannot work anywhere (a GPU machine included)."""
    assert main(["demo", "--device", device, "--screenshot", "unused.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(said, err), err
    assert not Path("unused.png").exists()
