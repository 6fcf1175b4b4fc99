"""Checks that a heatmap cell of the grid shows its values in its row's colour scale.

The grid shows pictures the view model drew (RGBA uint8); these helpers recompute, in
float64 and independently of the view model's drawing code, the colour each raw value
must have under the colour bar that the row shows (its levels and its colour map).
"""

from __future__ import annotations

import numpy as np


def bar_colours(internals, name: str) -> tuple[tuple[float, float], np.ndarray]:
    """(levels, (256, 3) uint8 colours) of the colour bar at the end of ``name``'s row."""
    bar = internals.grid.bars[name]
    table = bar.colorMap().getLookupTable(nPts=256, alpha=False, mode="byte")
    return tuple(float(v) for v in bar.levels()), np.asarray(table, np.int64)


def expected_colours(values: np.ndarray, levels: tuple[float, float], table: np.ndarray) -> np.ndarray:
    """The colour of each value: its place between the levels, clipped, picked from the table."""
    low, high = levels
    scaled = np.clip((np.nan_to_num(np.asarray(values, np.float64)) - low) / (high - low), 0.0, 1.0)
    return table[np.rint(scaled * (len(table) - 1)).astype(np.int64)]


def assert_cell_shows(internals, layer: int, name: str, values: np.ndarray) -> None:
    """Cell (layer, name) shows ``values`` (H, W) in its row bar's colours; NaN transparent.

    A value exactly between two table entries may round either way in float32, so each
    pixel may differ from the expected colour by at most one table step (the largest
    difference between neighbouring entries of the bar's table)."""
    image = internals.cells[(layer, name)][1].image
    assert image is not None and image.dtype == np.uint8
    assert image.shape == (*np.shape(values), 4)
    levels, table = bar_colours(internals, name)
    finite = np.isfinite(values)
    np.testing.assert_array_equal(image[..., 3], np.where(finite, 255, 0))
    step = int(np.abs(np.diff(table, axis=0)).max())
    shown = image[..., :3].astype(np.int64)[finite]
    difference = np.abs(shown - expected_colours(values, levels, table)[finite])
    assert difference.max(initial=0) <= step, (name, layer, levels, difference.max())
