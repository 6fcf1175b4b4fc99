"""The synthetic generators: what the demo, the training script and other tests rely on."""

import numpy as np
import pytest

from mimviewer.data.synthetic import bouncing_digits, digit_glyphs, radar_storms


def test_bouncing_digits_have_the_moving_mnist_shape_and_range():
    frames = bouncing_digits(3, length=10, size=64, num_digits=2, seed=0)
    assert frames.shape == (3, 10, 1, 64, 64)
    assert frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    # Two digits of ~20 px ink cover a few percent of a 64x64 frame, not nothing, not all.
    ink = (frames > 0.5).mean(axis=(2, 3, 4))
    assert np.all(ink > 0.01) and np.all(ink < 0.3)


def test_same_seed_gives_the_same_sequences_and_another_seed_does_not():
    a = bouncing_digits(2, length=6, size=32, seed=7)
    b = bouncing_digits(2, length=6, size=32, seed=7)
    c = bouncing_digits(2, length=6, size=32, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(
        radar_storms(2, length=6, size=32, seed=3), radar_storms(2, length=6, size=32, seed=3)
    )
    assert not np.array_equal(
        radar_storms(1, length=6, size=32, seed=3), radar_storms(1, length=6, size=32, seed=4)
    )


def test_digits_move_and_stay_inside():
    frames = bouncing_digits(20, length=20, size=64, num_digits=1, seed=1)
    change = np.abs(np.diff(frames, axis=1)).sum(axis=(2, 3, 4))  # (N, T-1)
    # A bounce can land a digit on the pixel it left; anything more than that is standing still.
    assert (change < 1.0).mean() < 0.03
    assert np.all((change < 1.0).sum(axis=1) <= 1)
    # The ink never leaves the frame: every frame keeps the same amount of it.
    ink = frames.sum(axis=(2, 3, 4), dtype=np.float64)
    np.testing.assert_allclose(ink, np.broadcast_to(ink[:, :1], ink.shape), rtol=1e-5)


def test_the_ten_digits_look_different_and_styles_vary():
    bank = digit_glyphs(28)
    assert bank.shape[0] == 10 and bank.shape[2:] == (28, 28)
    first_style = bank[:, 0].reshape(10, -1)
    distances = np.abs(first_style[:, None] - first_style[None]).sum(-1)
    assert np.all(distances[~np.eye(10, dtype=bool)] > 10)
    assert np.abs(bank[3, 0] - bank[3, -1]).sum() > 10


def test_radar_storms_are_in_dbz_mostly_dry_with_some_strong_cells():
    field = radar_storms(8, length=12, size=64, seed=0)
    assert field.shape == (8, 12, 1, 64, 64) and field.dtype == np.float32
    assert field.min() >= -10.0 and field.max() <= 60.0
    dry = (field < 0.0).mean()
    assert 0.5 < dry < 0.99
    assert field.max() > 35.0, "no convective core anywhere"


def test_radar_storms_advect_and_change_intensity():
    field = radar_storms(4, length=20, size=64, seed=2)[:, :, 0]
    change = np.abs(np.diff(field, axis=1)).mean(axis=(2, 3))
    assert np.all(change > 0.05)
    # The rain's centre of mass travels: storms are carried by the wind, not flickering in place.
    rain = np.clip(field + 10.0, 0, None)
    ys, xs = np.mgrid[0:64, 0:64]
    mass = rain.sum(axis=(2, 3))
    centre = np.stack([(rain * ys).sum(axis=(2, 3)) / mass, (rain * xs).sum(axis=(2, 3)) / mass], -1)
    travelled = np.linalg.norm(centre[:, -1] - centre[:, 0], axis=-1)
    assert np.all(travelled > 2.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        bouncing_digits(1, size=4)
    with pytest.raises(ValueError):
        radar_storms(1, length=0)
