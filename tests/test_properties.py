"""Properties that must hold for every shape and value, checked with hypothesis."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mimviewer.data import units
from mimviewer.nets import patchify, unpatchify


@settings(max_examples=60, deadline=None)
@given(
    p=st.integers(1, 4),
    channels=st.integers(1, 3),
    grid=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    lead=st.lists(st.integers(1, 3), max_size=2),
)
def test_patchify_is_a_lossless_permutation(p, channels, grid, lead):
    frames = torch.randn(*lead, channels, grid[0] * p, grid[1] * p)
    patched = patchify(frames, p)
    assert patched.shape == (*lead, p * p * channels, grid[0], grid[1])
    assert torch.equal(unpatchify(patched, p), frames)
    assert torch.equal(torch.sort(patched.flatten()).values, torch.sort(frames.flatten()).values)


@settings(max_examples=100, deadline=None)
@given(
    dbz=st.floats(-10, 60),
    a=st.floats(50, 500),
    b=st.floats(1.0, 2.5),
)
def test_radar_unit_conversions_invert_each_other(dbz, a, b):
    assert np.isclose(units.unit_to_dbz(units.dbz_to_unit(dbz)), dbz, atol=1e-9)
    assert 0.0 <= units.dbz_to_unit(dbz) <= 1.0
    rain = units.dbz_to_rain_rate(dbz, a, b)
    assert rain > 0
    assert np.isclose(units.rain_rate_to_dbz(rain, a, b), dbz, atol=1e-6)
