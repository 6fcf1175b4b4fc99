"""The one input rule (mimviewer.data.normalise), the same through every path that reads frames."""

from __future__ import annotations

import numpy as np
import pytest

from mimviewer.data import normalise, open_sequence
from mimviewer.errors import DataError
from mimviewer.inference import as_frames

PIXELS = np.random.default_rng(0).integers(0, 256, size=(3, 1, 8, 8))


@pytest.mark.parametrize(
    ("values", "expected", "noted"),
    [
        (PIXELS.astype(np.uint8), PIXELS / 255, False),
        (PIXELS.astype(np.uint16) * 257, PIXELS / 255, False),
        (PIXELS.astype(np.float32) / 255, PIXELS / 255, False),
        (PIXELS.astype(np.float64), PIXELS / 255, True),  # float 0..255: divided and said
    ],
)
def test_accepted_values_reach_the_model_scale(values, expected, noted):
    frames, note = normalise(values, "x.npy")
    assert frames.dtype == np.float32
    np.testing.assert_allclose(frames, expected, atol=1e-6)
    assert (note is not None) == noted


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[0.5, np.nan], [np.inf, 0.1]]), r"x\.npy: 2 pixel value\(s\) are NaN or infinite"),
        (np.array([[0.5, -0.1], [-2.0, 0.1]]), r"x\.npy: 2 pixel value\(s\) are negative \(min -2\)"),
        (np.array([[0.5, 256.0], [1000.0, 0.1]]), r"x\.npy: 2 pixel value\(s\) are above 255"),
        (np.zeros((2, 2), np.int64), r"x\.npy: frames must be uint8, uint16 or float, not int64"),
        (np.zeros((2, 2), bool), r"not bool"),
        (np.zeros((2, 2), np.complex64), r"not complex64"),
    ],
)
def test_refused_values_are_one_line_naming_the_file_and_count(values, message):
    with pytest.raises(DataError, match=message):
        normalise(values, "x.npy")


def test_the_readers_and_the_rollout_apply_the_same_rule(tmp_path):
    np.save(tmp_path / "float255.npy", PIXELS.astype(np.float32))
    np.save(tmp_path / "uint8.npy", PIXELS.astype(np.uint8))
    a = open_sequence(tmp_path / "float255.npy", layout="TCHW")
    b = open_sequence(tmp_path / "uint8.npy", layout="TCHW")
    np.testing.assert_array_equal(a.frames(), b.frames())
    assert any("read as 0..255" in t for t in a.meta.transforms)
    np.testing.assert_array_equal(as_frames(PIXELS.astype(np.float32)).numpy()[0], a.frames())


def test_a_reader_refuses_nan_in_a_later_frame_when_it_is_read(tmp_path):
    values = np.full((6, 1, 8, 8), 0.5, np.float32)
    values[4, 0, 2, :3] = np.nan
    np.save(tmp_path / "holes.npy", values)
    seq = open_sequence(tmp_path / "holes.npy", layout="TCHW")
    assert seq.frames(0, 3).shape == (3, 1, 8, 8)  # lazily: only what is read is checked
    with pytest.raises(DataError, match=r"holes\.npy \(frames 3\.\.5\): 3 pixel value\(s\) are NaN"):
        seq.frames(3, 6)
