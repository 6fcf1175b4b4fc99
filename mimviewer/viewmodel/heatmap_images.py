"""The heatmap grid's cells drawn once: one colour scale per quantity row (the union of its
layers' levels), each (slot, layer, quantity, step, reduction, levels) drawn into RGBA once and
kept, so that scrubbing only swaps images. Mixed into :class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from mimviewer.render import TABLES
from mimviewer.trace_spec import key
from mimviewer.viewmodel.display import table_index

if TYPE_CHECKING:
    from mimviewer.viewmodel.results import ModelSlot

TRANSPARENT = np.zeros(4, np.uint8)


def heatmap_table(levels: tuple[float, float]) -> np.ndarray:
    """(256, 3) uint8 colours of a heatmap row: sequential for [0, x], diverging around zero."""
    return TABLES["diverging" if levels[0] < 0 else "viridis"]


def heatmap_rgba(data: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """A heatmap drawn once: sequential colours for [0, x], diverging around zero; NaN transparent.
    The "split" reduction's (H, W, 3) shares are colours already: drawn as they are (NaN black)."""
    if data.ndim == 3:
        rgba = np.empty((*data.shape[:2], 4), np.uint8)
        rgba[..., :3] = np.rint(np.clip(np.nan_to_num(data, nan=0.0), 0.0, 1.0) * 255)
        rgba[..., 3] = 255
        return rgba
    table = heatmap_table(levels)
    rgba = np.empty((*data.shape, 4), np.uint8)
    rgba[..., :3] = table[table_index(data, *levels)]
    rgba[..., 3] = 255
    rgba[np.isnan(data)] = TRANSPARENT
    return rgba


class HeatmapCell(NamedTuple):
    """One grid cell at one step, ready to show: its drawn image and whether the step computed it."""

    image: np.ndarray  # (H, W, 4) uint8 RGBA, the row's colour scale applied
    computed: bool  # False: every value NaN (the step computes nothing there): "not computed"


class HeatmapImagesState:
    """Mixed into the Session: the drawn heatmap cells and their rows' colour scales, cached."""

    slots: list[ModelSlot | None]

    def _init_heatmap_images(self) -> None:
        self._heatmap_images: dict[tuple, tuple[HeatmapCell, np.ndarray]] = {}  # -> (cell, its maps)
        self._row_levels: dict[tuple, tuple[tuple[float, float], tuple[np.ndarray, ...]]] = {}

    def _forget_heatmaps(self, slot: int) -> None:
        """A slot has new results: its drawn heatmaps and row scales are stale."""
        self._heatmap_images = {k: v for k, v in self._heatmap_images.items() if k[0] != slot}
        self._row_levels = {k: v for k, v in self._row_levels.items() if k[0] != slot}

    def heatmap_row_levels(self, name: str, slot: int = 0) -> tuple[float, float]:
        """One colour scale for a quantity's row: the union of its layers' heatmap levels,
        computed once per reduction and finished step (scrubbing does not recompute it)."""
        s = self.slots[slot]
        if s is None:
            return (0.0, 1.0)
        layers = [l for l in range(s.model.config.num_layers) if self.has(l, name, slot)]  # type: ignore[attr-defined]
        maps = tuple(s.maps.get(key(l, name)) for l in layers)
        cache = (slot, name, self.reduction, s.done_steps)  # type: ignore[attr-defined]
        kept = self._row_levels.get(cache)
        if kept is not None and len(kept[1]) == len(maps) and all(map(operator.is_, kept[1], maps)):
            return kept[0]
        low, high = np.inf, -np.inf
        for layer in layers:
            lo, hi = self.heatmap_levels(layer, name, slot=slot)  # type: ignore[attr-defined]
            low, high = min(low, lo), max(high, hi)
        levels = (float(low), float(high)) if layers else (0.0, 1.0)
        self._row_levels[cache] = (levels, maps)  # the maps are kept: a replaced array is noticed
        return levels

    def heatmap_cell(
        self, layer: int, name: str, step: int, slot: int = 0, levels: tuple[float, float] | None = None
    ) -> HeatmapCell | None:
        """One grid cell at one step drawn with its row's colour scale (``levels``: the row's
        :meth:`heatmap_row_levels`, when the caller has them), once per (slot, layer, quantity,
        step, reduction, levels) and kept (None: nothing recorded yet)."""
        s = self.slots[slot]
        maps = None if s is None else s.maps.get(key(layer, name))
        if maps is None:
            return None
        levels = self.heatmap_row_levels(name, slot) if levels is None else levels
        cache = (slot, layer, name, step, self.reduction, levels)  # type: ignore[attr-defined]
        kept = self._heatmap_images.get(cache)
        if kept is not None and kept[1] is maps:
            return kept[0]
        data = self.heatmap(layer, name, step, slot=slot)  # type: ignore[attr-defined]
        if data is None:
            return None
        cell = HeatmapCell(heatmap_rgba(data, levels), bool(np.isfinite(data).any()))
        self._heatmap_images[cache] = (cell, maps)
        return cell

    def heatmap_image(self, layer: int, name: str, step: int, slot: int = 0) -> np.ndarray | None:
        """The heatmap of one quantity at one step as the grid shows it (RGBA uint8), drawn once."""
        cell = self.heatmap_cell(layer, name, step, slot)
        return None if cell is None else cell.image
