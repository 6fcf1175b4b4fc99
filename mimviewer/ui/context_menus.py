"""Right-click menu of a heatmap cell: reset zoom, copy image, export this heatmap, copy the value.

(The frame views build theirs in :mod:`mimviewer.ui.frame_views`.)"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu

from mimviewer.ui.images import native_qimage


def heatmap_menu(panel, layer: int, name: str, row: int, col: int) -> QMenu:
    """The menu of one cell of an InternalsPanel, for the pixel (row, col) under the cursor."""
    menu = QMenu(panel)
    menu.addAction("Reset zoom", lambda: reset_cell_zoom(panel, layer, name))
    menu.addAction("Copy image", lambda: copy_cell_image(panel, layer, name))
    menu.addAction("Export this heatmap…", lambda: ask_export_cell(panel, layer, name))
    menu.addAction("Copy the value under the cursor", lambda: copy_cell_value(panel, layer, name, row, col))
    return menu


def reset_cell_zoom(panel, layer: int, name: str) -> None:
    view = panel.cells[(layer, name)][0]
    view.autoRange(padding=0)


def drawn_cell(panel, layer: int, name: str) -> np.ndarray | None:
    """The cell as it is drawn (RGBA uint8, its row's colour scale applied by the view model)."""
    image = panel.cells[(layer, name)][1].image
    return None if image is None else image.copy()


def copy_cell_image(panel, layer: int, name: str) -> None:
    drawn = drawn_cell(panel, layer, name)
    if drawn is not None:
        QApplication.clipboard().setImage(native_qimage(drawn))


def ask_export_cell(panel, layer: int, name: str) -> None:
    step = panel.session.step_of_frame()
    path, _ = QFileDialog.getSaveFileName(
        panel, "Export this heatmap", f"layer{layer}-{name}-step{step}.png", "PNG (*.png)"
    )
    if path:
        export_cell(panel, layer, name, path)


def export_cell(panel, layer: int, name: str, path: str) -> None:
    """Write the cell as drawn (RGB, transparent pixels black) as a PNG."""
    from mimviewer.export import write_png

    drawn = drawn_cell(panel, layer, name)
    if drawn is not None:
        write_png(path, drawn[..., :3])


def copy_cell_value(panel, layer: int, name: str, row: int, col: int) -> str:
    data = panel.session.heatmap(layer, name, panel.session.step_of_frame(), slot=panel.slot)
    text = "" if data is None else f"{float(data[row, col]):.6g}"
    QApplication.clipboard().setText(text)
    return text
