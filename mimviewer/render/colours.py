"""Colour scales: values -> RGB uint8, plus what a colour bar needs (ticks, labels, units).

Video and plain intensity use grey or viridis over [0, 1]. Radar uses pySTEPS's
"pysteps" precipitation scale, the usual reference in nowcasting papers. Its colour table
(16 colours; boundaries 0.08 ... 160 mm/h, and 10 ... 60 dBZ in 5 dBZ steps where pySTEPS
resamples the 16 colours to 10 bins) is reproduced here as data, credited to pySTEPS
(BSD-3-Clause). We do not depend on pySTEPS itself: it pulls in SciPy, pyproj, netCDF4
and matplotlib for what is, for us, one table of colours.

Each scale works on model-scale values in [0, 1] (``unit_to_rgb``, ``lookup_table``) or on
physical values (``to_rgb``); a GUI turns ``lookup_table()`` into an image LUT indexed by
the model scale, which is exactly what ``unit_to_rgb`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mimviewer.data import units as radar_units

RGB = tuple[int, int, int]

# pySTEPS "pysteps" colour list (visualization/precipfields.py), as RGB.
_PYSTEPS_COLOURS: tuple[RGB, ...] = (
    (156, 126, 148), (100, 0, 100), (175, 0, 175), (220, 0, 220), (50, 50, 200), (0, 100, 255),
    (0, 150, 150), (0, 200, 50), (100, 255, 0), (150, 255, 0), (200, 255, 0), (255, 255, 0),
    (255, 200, 0), (255, 160, 0), (255, 125, 0), (225, 25, 0),
)  # fmt: skip
_PYSTEPS_RAIN_LEVELS = (0.08, 0.16, 0.25, 0.40, 0.63, 1, 1.6, 2.5, 4, 6.3, 10, 16, 25, 40, 63, 100, 160)
_PYSTEPS_DBZ_LEVELS = tuple(range(10, 65, 5))
_PYSTEPS_OVER: RGB = (139, 0, 0)  # matplotlib "darkred", pySTEPS's over-range colour
NO_RAIN: RGB = (0, 0, 0)  # below the lowest level (pySTEPS leaves it transparent)


def interpolate_colours(anchors, count: int = 256) -> np.ndarray:
    """``count`` colours evenly spaced along a piecewise-linear path through RGB ``anchors``.

    The one colour interpolator: the diverging table, and pySTEPS's 16 colours fitted to its 10
    dBZ bins (as matplotlib's ``LinearSegmentedColormap.from_list(colours, N=count)`` does).
    """
    table = np.asarray(anchors, np.float64)
    positions = np.linspace(0.0, 1.0, len(table))
    samples = np.linspace(0.0, 1.0, count)
    channels = [np.interp(samples, positions, table[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def _format_level(value: float) -> str:
    """pySTEPS-style tick label: integers bare, small values with two decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


@dataclass(frozen=True)
class ColourBar:
    """What to draw next to an image: a title, units and labelled ticks.

    ``positions`` are in model scale [0, 1] (where the tick sits on a bar drawn from the
    lookup table); ``values`` are the same ticks in physical units.
    """

    title: str
    units: str
    values: tuple[float, ...]
    positions: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ColourScale:
    """A mapping from values to colours, either continuous (a 256-entry table spread evenly
    over the model scale, so mm/h is shown on the dBZ-like log scale) or discrete
    (``colours[k]`` between ``levels[k]`` and ``levels[k+1]``, ``under`` below the first
    level, ``over`` from the last level on)."""

    name: str
    units: str  # "intensity", "dBZ" or "mm/h": what ``to_rgb`` takes
    colours: np.ndarray  # (K, 3) uint8
    levels: tuple[float, ...] | None = None  # K + 1 boundaries for a discrete scale
    under: RGB = NO_RAIN
    over: RGB = _PYSTEPS_OVER
    ticks: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # colour-bar ticks of a continuous scale
    # units "value": a plain range (differences, heatmaps) the table spans, and what its bar says
    vmin: float = 0.0
    vmax: float = 1.0
    title: str = ""
    bad: RGB | None = None  # colour of NaN (None: as the lowest value)

    def to_rgb(self, values: np.ndarray) -> np.ndarray:
        """Physical values (any shape) -> RGB uint8 with a trailing axis of 3; NaN -> ``under``."""
        values = np.asarray(values, np.float64)
        if self.levels is None:
            position = self.from_physical(values) * (len(self.colours) - 1)
            index = np.rint(np.nan_to_num(position, nan=0.0).clip(0, len(self.colours) - 1)).astype(np.intp)
            rgb = self.colours[index]
            if self.bad is not None:
                rgb[np.isnan(values)] = self.bad
            return rgb
        palette = np.concatenate([[self.under], self.colours, [self.over]]).astype(np.uint8)
        index = np.searchsorted(np.asarray(self.levels), values, side="right")  # 0: under, K+1: over
        index = np.where(np.isnan(values), 0, index)  # np.where: a 0-d value works too
        return palette[index]

    def to_physical(self, unit: np.ndarray) -> np.ndarray:
        """Model-scale values -> this scale's units."""
        unit = np.asarray(unit, np.float64)
        if self.units == "dBZ":
            return radar_units.unit_to_dbz(unit)
        if self.units == "mm/h":
            return radar_units.unit_to_rain_rate(unit)
        if self.units == "value":
            return self.vmin + unit * (self.vmax - self.vmin)
        return unit

    def from_physical(self, values: np.ndarray) -> np.ndarray:
        """Values in this scale's units -> model scale."""
        values = np.asarray(values, np.float64)
        if self.units == "dBZ":
            return radar_units.dbz_to_unit(values)
        if self.units == "mm/h":
            return radar_units.rain_rate_to_unit(values)
        if self.units == "value":
            return (values - self.vmin) / ((self.vmax - self.vmin) or 1.0)
        return values

    def unit_to_rgb(self, unit: np.ndarray) -> np.ndarray:
        """Model-scale values in [0, 1] -> RGB uint8 (what views and exports draw)."""
        return self.to_rgb(self.to_physical(unit))

    def lookup_table(self, size: int = 256) -> np.ndarray:
        """(size, 3) uint8: entry i is the colour of model-scale value ``i / (size - 1)``."""
        return self.unit_to_rgb(np.linspace(0.0, 1.0, size))

    def colour_bar(self, title: str | None = None) -> ColourBar:
        """Ticks for a colour bar: the level boundaries of a discrete scale, else ``ticks``."""
        values = tuple(float(v) for v in (self.ticks if self.levels is None else self.levels))
        labels = tuple(
            _format_level(v) if self.levels is not None else f"{v:.3g}" if self.units == "value" else f"{v:g}"
            for v in values
        )
        positions = tuple(float(p) for p in self.from_physical(np.asarray(values)))
        default_titles = {"dBZ": "Reflectivity", "mm/h": "Rain rate", "intensity": "Intensity"}
        title = title or self.title or default_titles.get(self.units, "")
        return ColourBar(title, self.units, values, positions, labels)


GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
# matplotlib's viridis, as OpenCV ships it (identical values, BGR flipped to RGB).
VIRIDIS = np.ascontiguousarray(
    cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
)
# Blue - white - red, for signed values centred on zero (differences, memories).
DIVERGING = interpolate_colours(
    [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]
)
TABLES: dict[str, np.ndarray] = {"grey": GREY, "viridis": VIRIDIS, "diverging": DIVERGING}


SCALES: tuple[str, ...] = ("grey", "viridis", "pysteps")
UNITS: tuple[str, ...] = ("intensity", "dBZ", "mm/h")


def colour_scale(units: str = "intensity", name: str | None = None) -> ColourScale:
    """The colour scale for data in ``units``: grey for intensity, pySTEPS's for radar, unless
    ``name`` picks another ("grey", "viridis" or "pysteps")."""
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; known: {', '.join(UNITS)}")
    name = name or ("grey" if units == "intensity" else "pysteps")
    if name not in SCALES:
        raise ValueError(f"unknown colour scale {name!r}; known: {', '.join(SCALES)}")
    if name == "pysteps":
        if units == "intensity":
            raise ValueError("the pysteps colour scale needs radar units (dBZ or mm/h)")
        if units == "dBZ":
            colours = interpolate_colours(_PYSTEPS_COLOURS, len(_PYSTEPS_DBZ_LEVELS) - 1)
            return ColourScale("pysteps", units, colours, tuple(map(float, _PYSTEPS_DBZ_LEVELS)))
        return ColourScale("pysteps", units, np.asarray(_PYSTEPS_COLOURS, np.uint8), _PYSTEPS_RAIN_LEVELS)
    table = TABLES[name]
    if units == "dBZ":
        return ColourScale(name, units, table, ticks=(-10.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0))
    if units == "mm/h":
        return ColourScale(name, units, table, ticks=(0.1, 1.0, 10.0, 100.0))
    return ColourScale(name, units, table)


def value_scale(table: str, vmin: float, vmax: float, title: str = "", bad: RGB | None = None) -> ColourScale:
    """A plain range [vmin, vmax] over one of :data:`TABLES` (differences, heatmaps); ticks at
    both ends and the middle."""
    return ColourScale(
        table,
        "value",
        TABLES[table],
        ticks=(vmin, (vmin + vmax) / 2, vmax),
        vmin=vmin,
        vmax=vmax,
        title=title,
        bad=bad,
    )


def unit_to_rgb(unit: np.ndarray, units: str = "intensity", name: str | None = None) -> np.ndarray:
    """Model-scale frames in [0, 1] -> RGB uint8 (..., 3) in the default scale for ``units``."""
    return colour_scale(units, name).unit_to_rgb(unit)
