"""An image item for pictures the view model has already drawn: a frame step is one pixmap swap.

The view model draws every frame and heatmap once into display-ready uint8 RGB(A) arrays
(``Session.images_at``, ``Session.heatmap_cell``). pyqtgraph's ImageItem would turn each
array into a QImage again on every ``setImage``, and, being a Python subclass of a graphics
item, runs Python for every bounding-rect query and paint of the scene. Here each array is
converted once into a QPixmap in Qt's native format (RGB32, premultiplied ARGB32 where there
is transparency) and kept with the array, and the item is Qt's own QGraphicsPixmapItem
(nearest-neighbour scaling, no Python in the paint path), so showing a frame again only
swaps a pixmap.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem

KEPT_BYTES = 64 * 2**20  # converted pixmaps one item keeps (a timeline of frames, every step of a heatmap)


def native_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3|4) uint8 RGB(A) -> a QImage (own copy) in RGB32, or premultiplied ARGB32 with alpha."""
    height, width = rgb.shape[:2]
    bgra = np.empty((height, width, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
    image_format = QImage.Format.Format_RGB32
    bgra[..., 3] = 255
    if rgb.shape[2] == 4 and (rgb[..., 3] < 255).any():  # premultiply: transparent pixels (0, 0, 0, 0)
        alpha = rgb[..., 3]
        bgra[..., :3] = (bgra[..., :3].astype(np.uint16) * alpha[..., None] // 255).astype(np.uint8)
        bgra[..., 3] = alpha
        image_format = QImage.Format.Format_ARGB32_Premultiplied
    return QImage(bgra.data, width, height, 4 * width, image_format).copy()


class DisplayImage(QGraphicsPixmapItem):
    """Shows drawn uint8 RGB(A) arrays; ``image`` is the array shown (None when cleared)."""

    def __init__(self) -> None:
        super().__init__()
        self.image: np.ndarray | None = None
        self.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self._pixmaps: dict[int, tuple[np.ndarray, QPixmap]] = {}  # id(array) -> (array, its pixmap)
        self._kept_bytes = 0

    def setImage(self, image: np.ndarray) -> None:
        """Show a drawn array: converted on its first showing, swapped in afterwards."""
        kept = self._pixmaps.get(id(image))
        if kept is None or kept[0] is not image:  # the array is kept too, so its id is never reused
            if self._kept_bytes > KEPT_BYTES:
                self._pixmaps.clear()
                self._kept_bytes = 0
            kept = (image, QPixmap.fromImage(native_qimage(image)))
            self._pixmaps[id(image)] = kept
            self._kept_bytes += 2 * image.nbytes
        self.image = image
        self.setPixmap(kept[1])

    def clear(self) -> None:
        self.image = None
        self.setPixmap(QPixmap())
