"""Thousands of ImageItem repaints must not crash the interpreter (guards the PySide6 < 6.12 pin).

PySide6 6.12.0 with pyqtgraph 0.14 drops a reference to ``True`` on every ImageItem paint;
after a few thousand paints the count reaches zero and the interpreter aborts. On a good
version the count stays flat.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pyqtgraph as pg

REPAINTS = 3000


class CountingImageItem(pg.ImageItem):
    """An ImageItem that counts its paints, to prove that every cycle really painted."""

    paints = 0

    def paint(self, *args) -> None:
        self.paints += 1
        super().paint(*args)


def test_thousands_of_image_repaints_keep_references_to_true(qtbot):
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    widget.resize(200, 200)
    widget.show()
    view = widget.addViewBox(lockAspect=True)
    item = CountingImageItem()
    view.addItem(item)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(8)]
    item.setImage(frames[0], autoLevels=False, levels=(0, 255))
    widget.grab()  # the first paint allocates caches
    counts = []
    for i in range(REPAINTS):
        item.setImage(frames[i % len(frames)], autoLevels=False, levels=(0, 255))
        widget.grab()  # paints the scene now (repaint() does not paint an unexposed offscreen window)
        if i % 500 == 0:
            counts.append(sys.getrefcount(True))
    counts.append(sys.getrefcount(True))
    assert item.paints >= REPAINTS
    assert np.array_equal(item.image, frames[(REPAINTS - 1) % len(frames)])
    # a leak of one reference per paint would lose ~3000; allow noise from other objects
    assert counts[-1] >= counts[0] - 100, f"references to True fell steadily: {counts}"
    assert not all(b < a for a, b in itertools.pairwise(counts)), counts
