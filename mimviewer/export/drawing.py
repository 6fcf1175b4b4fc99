"""Drawing primitives of every exported picture: layout sizes, role colours, text, colour bars.

Drawn with numpy and OpenCV (``cv2.putText``) only, so the CLI, the GUI and a headless
server draw the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mimviewer.render import ColourBar

# Border colours (RGB) that tell context frames (the model reads the truth) from predicted ones.
CONTEXT_COLOUR = (70, 150, 255)
PREDICTED_COLOUR = (255, 140, 0)
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)
ABSENT_COLOUR = (56, 56, 56)  # a panel without data (truth not observed yet)
ABSENT_HATCH = (80, 80, 80)

BORDER = 3  # px of role colour around every panel
MARGIN = 8  # px between panels
HEADER = 24  # px of the title line (frame index and role)
LABEL = 18  # px of the panel name above each panel
COLOURBAR_WIDTH = 12
COLOURBAR_SPACE = 104  # bar + tick labels (and room for its title)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.4
MIN_PANEL = 128  # small frames are enlarged (nearest neighbour) to at least this many pixels


def _text(
    image: np.ndarray, text: str, x: int, y: int, colour=TEXT_COLOUR, scale: float = FONT_SCALE
) -> None:
    """Draw ``text`` with its baseline at (x, y)."""
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def _text_width(text: str, scale: float = FONT_SCALE) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def _fit(text: str, width: int) -> str:
    """Shorten ``text`` with '..' until it fits in ``width`` pixels."""
    while len(text) > 3 and _text_width(text) > width:
        text = text[:-3] + ".."
    return text


def _enlarge(rgb: np.ndarray, zoom: int) -> np.ndarray:
    return rgb if zoom == 1 else np.repeat(np.repeat(rgb, zoom, 0), zoom, 1)


def _draw_colourbar(
    image: np.ndarray,
    x: int,
    y: int,
    height: int,
    column: np.ndarray,
    ticks: Sequence[tuple[float, str]],
    title: str,
) -> None:
    """A vertical colour bar: ``column`` (height, 3) top to bottom, ticks at positions from the bottom."""
    image[y : y + height, x : x + COLOURBAR_WIDTH] = column[:, None]
    last_y = -100
    for position, label in sorted(ticks, key=lambda tick: -tick[0]):  # top first
        if not 0.0 <= position <= 1.0:
            continue
        ty = y + round((1.0 - position) * (height - 1))
        if ty - last_y < 11:  # keep labels readable: skip one that would overlap
            continue
        last_y = ty
        image[ty, x + COLOURBAR_WIDTH : x + COLOURBAR_WIDTH + 3] = TEXT_COLOUR
        _text(image, label, x + COLOURBAR_WIDTH + 5, min(max(ty + 4, y + 8), y + height + 3))
    _text(image, _fit(title, COLOURBAR_SPACE - 4), x, y - 5)


def _draw_scale(image: np.ndarray, x: int, y: int, height: int, bar: ColourBar, table: np.ndarray) -> None:
    """A colour bar of ``table`` (256 colours from the bottom up) labelled as ``bar`` says."""
    positions = np.linspace(1.0, 0.0, height)
    column = table[np.rint(positions * (len(table) - 1)).astype(np.intp)]
    _draw_colourbar(image, x, y, height, column, list(zip(bar.positions, bar.labels, strict=True)), bar.title)


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the bottom/right with background so both sides divide ``multiple`` (video codecs)."""
    h, w = image.shape[:2]
    out = np.empty((-(-h // multiple) * multiple, -(-w // multiple) * multiple, 3), np.uint8)
    out[:] = BACKGROUND
    out[:h, :w] = image
    return out


def _draw_absent(image: np.ndarray, y: int, x: int, height: int, width: int, text: str) -> None:
    """A panel with nothing to show (no truth yet): hatched grey with the reason, never a zero frame."""
    area = image[y : y + height, x : x + width]
    area[:] = ABSENT_COLOUR
    rows, cols = np.indices((height, width))
    area[(rows + cols) % 12 == 0] = ABSENT_HATCH
    words = text.split()
    half = len(words) // 2 or 1
    for i, line in enumerate(line for line in (" ".join(words[:half]), " ".join(words[half:])) if line):
        tx = x + max(2, (width - _text_width(line)) // 2)
        _text(image, _fit(line, width - 4), tx, y + height // 2 + 14 * i)
