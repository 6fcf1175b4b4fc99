"""The one frame renderer: model-scale frames -> display RGB, for the window, every export and the study.

Frames are drawn through a 256-entry table indexed by the model-scale value (rounded to
1/255), so the window, GIF/MP4/PNG exports and the study show identical pixels for the same
frame. A three-channel intensity frame (a colour video) is shown as its own colours.

Difference rule (one for every view and export): prediction − ground truth, averaged over
channels, in the model scale, on the diverging table over a fixed symmetric range of
±``DIFFERENCE_RANGE`` (half the data's range: ±0.5 for intensity in [0, 1], ±127.5 for a
0..255 video, ±35 dBZ for radar). Fixed rather than fitted to the largest error, so that a
frame looks the same while inference streams, in every export and across runs; the legend
says so and labels the range in the data's own units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mimviewer.render.colours import DIVERGING, UNITS, ColourBar, ColourScale, colour_scale

DIFFERENCE_RANGE = 0.5  # model-scale half-width of the difference scale (see the module docstring)


def _identity(values: np.ndarray) -> np.ndarray:
    return values


def _table_index(unit: np.ndarray) -> np.ndarray:
    """Model-scale values -> indices 0..255 of a lookup table (NaN -> 0)."""
    return np.rint(np.nan_to_num(np.clip(unit, 0.0, 1.0), nan=0.0) * 255).astype(np.intp)


@dataclass(frozen=True)
class FrameRenderer:
    """How a sequence's frames and differences look, and what their colour bars say."""

    scale: ColourScale
    # model scale -> the sequence's own values (0..255 for a video), for labels and the readout
    to_physical: Callable[[np.ndarray], np.ndarray] = _identity
    lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lut", self.scale.lookup_table())

    @classmethod
    def for_units(
        cls,
        units: str = "intensity",
        name: str | None = None,
        to_physical: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> FrameRenderer:
        """The renderer of data in ``units`` (unknown units are drawn as intensity)."""
        scale = colour_scale(units if units in UNITS else "intensity", name)
        return cls(scale, to_physical or scale.to_physical)

    @property
    def units(self) -> str:
        return self.scale.units

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Model-scale frames (..., C, H, W) -> RGB uint8 (..., H, W, 3)."""
        frames = np.asarray(frames, np.float32)
        if frames.shape[-3] == 3 and self.scale.units == "intensity":
            return _table_index(np.moveaxis(frames, -3, -1)).astype(np.uint8)
        return self.lut[_table_index(frames[..., 0, :, :])]

    def differences(self, prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Prediction − truth (..., C, H, W) -> RGB uint8 (..., H, W, 3) by the difference rule."""
        diff = (np.asarray(prediction, np.float32) - np.asarray(truth, np.float32)).mean(-3)
        return DIVERGING[_table_index(diff / (2 * DIFFERENCE_RANGE) + 0.5)]

    def physical(self, unit: float) -> float:
        """One model-scale value in the sequence's own units."""
        return float(np.asarray(self.to_physical(np.array([unit], np.float32))).reshape(-1)[0])

    def frame_bar(self) -> ColourBar:
        """The frames' colour bar; intensity is labelled in the sequence's own values."""
        bar = self.scale.colour_bar()
        ticks = [(p, v, label) for p, v, label in zip(bar.positions, bar.values, bar.labels, strict=True)]
        ticks = [t for t in ticks if 0.0 <= t[0] <= 1.0]
        if self.scale.units == "intensity":
            ticks = [(p, self.physical(p), f"{self.physical(p):.3g}") for p, _, _ in ticks]
        title = bar.title if bar.units == "intensity" else f"{bar.title} ({bar.units})"
        positions, values, labels = (tuple(t[i] for t in ticks) for i in range(3))
        return ColourBar(title, bar.units, values, positions, labels)  # the field order of ColourBar

    def difference_bar(self) -> ColourBar:
        """The difference colour bar: five ticks over the fixed range, in the data's units."""
        zero = self.physical(0.0)
        positions = tuple(float(p) for p in np.linspace(0.0, 1.0, 5))
        values = []
        for pos in positions:
            diff = (pos - 0.5) * 2 * DIFFERENCE_RANGE
            values.append(math.copysign(self.physical(abs(diff)) - zero, diff) if diff else 0.0)
        labels = tuple(f"{v:+.3g}" if v else "0" for v in values)
        units = "" if self.scale.units == "intensity" else f" ({self.scale.units})"
        title = f"prediction − GT{units}, fixed ±{abs(values[-1]):.3g}"
        return ColourBar(title, self.scale.units, tuple(values), positions, labels)
