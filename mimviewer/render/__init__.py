"""Drawing without Qt: colour scales and the one frame renderer (window, exports, study)."""

from mimviewer.render.colours import (
    DIVERGING,
    GREY,
    SCALES,
    TABLES,
    UNITS,
    VIRIDIS,
    ColourBar,
    ColourScale,
    colour_scale,
    interpolate_colours,
    unit_to_rgb,
    value_scale,
)
from mimviewer.render.frames import DIFFERENCE_RANGE, FrameRenderer

__all__ = [
    "DIFFERENCE_RANGE",
    "DIVERGING",
    "GREY",
    "SCALES",
    "TABLES",
    "UNITS",
    "VIRIDIS",
    "ColourBar",
    "ColourScale",
    "FrameRenderer",
    "colour_scale",
    "interpolate_colours",
    "unit_to_rgb",
    "value_scale",
]
