"""The internals grid that scales: one row per quantity (grouped by module), one column per layer.

Every cell has the same size (never squeezed below :data:`CELL` pixels: the grid scrolls
instead of cutting cells off); each quantity row has one colour scale for all its layers,
with its colour bar and units at the row's end; each label's tooltip gives the quantity's
equation (``mimviewer.quantities``). A cell whose step did not compute the quantity shows
"not computed". The view model does every computation, drawing included: each cell at each
step is a display-ready RGBA image coloured with its row's scale (``Session.heatmap_cell``),
shown by a :class:`~mimviewer.ui.images.DisplayImage`, so that a frame step only swaps
pixmaps (no float image pushed through a lookup table on every step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsSimpleTextItem, QScrollArea, QWidget

from mimviewer.quantities import UNITS, display_name, grouped, tooltip
from mimviewer.ui import no_paint_calls
from mimviewer.ui.images import DisplayImage

CELL = 64  # px: the smallest readable heatmap cell (cells grow with the panel, up to MAX_CELL)
MAX_CELL = 112
LABEL_WIDTH = 64
BAR_WIDTH = 76
HEADER_HEIGHT = 22


def centred_note(text: str) -> QGraphicsSimpleTextItem:
    """A grey note centred on its position, the same size at any zoom, hidden at first: Qt's
    own text item (pyqtgraph's TextItem runs Python before every paint of the scene, once per cell)."""
    note = QGraphicsSimpleTextItem(text)
    note.setBrush(QBrush(QColor("#888")))
    note.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    box = note.boundingRect()
    note.setTransform(QTransform.fromTranslate(-box.width() / 2, -box.height() / 2))
    note.setVisible(False)
    return note


class HeatmapGrid(QScrollArea):
    """Rows = quantities grouped by module, columns = layers; see the module docstring."""

    hovered = Signal(int, str, int, int)  # layer, name, row, column of the heatmap pixel
    clicked = Signal(int, str, int, int)
    double_clicked = Signal(int, str, int, int)
    context_menu = Signal(int, str, int, int)  # a right-click on a cell

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.slot = 0
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.ci.layout.setSpacing(2)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.canvas.scene().sigMouseMoved.connect(self._on_hover)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        self.setWidget(self.canvas)
        self.cells: dict[tuple[int, str], tuple[pg.ViewBox, DisplayImage, QGraphicsSimpleTextItem]] = {}
        self.bars: dict[str, pg.ColorBarItem] = {}
        self.labels: dict[str, pg.LabelItem] = {}
        self.message: pg.LabelItem | None = None
        self.cell = CELL
        self._shape = (1, 1, 0, [])  # rows, layers, groups, quantity rows (for resizing)
        self._bar_state = {}

    # -- structure --------------------------------------------------------------------------
    def rebuild(self, slot: int, names: list[str]) -> None:
        """Lay out the rows for ``names`` (grouped by module) and the model's layers."""
        self.slot = slot
        session = self.session
        canvas = self.canvas
        canvas.clear()
        self.cells, self.bars, self.labels, self.message = {}, {}, {}, None
        self._bar_state: dict[str, tuple[tuple[float, float], bool]] = {}
        layers = session.num_layers(slot)
        if not layers or not names:
            self.message = canvas.addLabel(
                "no model loaded" if not layers else "choose quantities to show", 0, 0
            )
            self._shape = (1, 1, 0, [])
            self._fix_size()
            return
        arch = session.slots[slot].model.config.arch
        layout = canvas.ci.layout
        row = 0
        for col in range(layers):
            canvas.addLabel(f"layer {col}", row=row, col=col + 1, size="9pt")
        layout.setRowFixedHeight(row, HEADER_HEIGHT)
        row += 1
        groups = grouped(names)
        quantity_rows: list[int] = []
        for group, members in groups:
            canvas.addLabel(f"<b>{group}</b>", row=row, col=0, colspan=layers + 2, size="9pt", justify="left")
            layout.setRowFixedHeight(row, HEADER_HEIGHT)
            row += 1
            for name in members:
                kind = session.kind(name, slot)
                label = canvas.addLabel(
                    f"<b>{display_name(name)}</b><br><span style='font-size:7pt'>{UNITS[kind]}</span>",
                    row=row,
                    col=0,
                    size="10pt",
                )
                first = next((l for l in range(layers) if session.has(l, name, slot)), 0)
                label.setToolTip(tooltip(arch, first, name, kind))
                self.labels[name] = label
                for layer in range(layers):
                    if not session.has(layer, name, slot):
                        canvas.addLabel("—", row=row, col=layer + 1)
                        continue
                    view = canvas.addViewBox(
                        row=row,
                        col=layer + 1,
                        lockAspect=not session.is_vector(layer, name, slot),
                        invertY=True,
                        enableMenu=False,
                    )
                    view.setMouseEnabled(False, False)
                    view.setToolTip(tooltip(arch, layer, name, kind))
                    image = DisplayImage()
                    view.addItem(image)
                    note = centred_note("not computed")
                    view.addItem(note, ignoreBounds=True)
                    self.cells[(layer, name)] = (view, image, note)
                # the row's scale; its cells are drawn with the same colours by the view model
                bar = pg.ColorBarItem(values=(0, 1), width=10, interactive=False, colorMapMenu=False)
                canvas.addItem(bar, row=row, col=layers + 1)
                self.bars[name] = bar
                quantity_rows.append(row)
                row += 1
        self._shape = (row, layers, len(groups), quantity_rows)
        no_paint_calls(self.canvas.ci)
        self._fix_size()

    def _fix_size(self) -> None:
        """Equal cells as large as the panel's width allows (CELL..MAX_CELL px): fixed column widths
        and row heights; the canvas is as big as they need, the scroll area shows the rest."""
        rows, layers, groups, quantity_rows = self._shape
        layout = self.canvas.ci.layout
        spacing_x, spacing_y = layout.horizontalSpacing(), layout.verticalSpacing()
        room = self.viewport().width() - LABEL_WIDTH - BAR_WIDTH - spacing_x * (layers + 1) - 24
        self.cell = cell = int(min(max(room // max(layers, 1), CELL), MAX_CELL))
        layout.setColumnFixedWidth(0, LABEL_WIDTH)
        for col in range(1, layers + 1):
            layout.setColumnFixedWidth(col, cell)
        layout.setColumnFixedWidth(layers + 1, BAR_WIDTH)
        for row in quantity_rows:
            layout.setRowFixedHeight(row, cell)
        height = HEADER_HEIGHT * (1 + groups) + cell * len(quantity_rows) + spacing_y * max(rows - 1, 0) + 16
        width = LABEL_WIDTH + cell * layers + BAR_WIDTH + spacing_x * (layers + 1) + 16
        self.canvas.setMinimumSize(width, height)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self._shape[3]:
            before = self.cell
            self._fix_size()
            if self.cell != before:
                for view, _image, _note in self.cells.values():
                    view.enableAutoRange()

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self, lut_for: Any) -> None:
        """Show every cell of the current step (one colour scale per quantity row): the bars
        change only with their scale, the cells swap pixmaps the view model drew."""
        session = self.session
        step = session.step_of_frame()
        rgb = session.reduction == "split"  # two colours: blue = share below, red = share above
        rows = {name: session.heatmap_row_levels(name, slot=self.slot) for name in self.bars}
        for name, bar in self.bars.items():
            levels = rows[name]
            if self._bar_state.get(name) == (levels, rgb):
                continue  # a bar repaints its axis: only when its scale changes, not every frame
            self._bar_state[name] = (levels, rgb)
            bar.setVisible(not rgb)
            bar.setColorMap(pg.ColorMap(np.linspace(0.0, 1.0, 256), lut_for(levels)))
            bar.setLevels(levels)
        for (layer, name), (view, image, note) in self.cells.items():
            cell = session.heatmap_cell(layer, name, step, slot=self.slot, levels=rows[name])
            if cell is None:
                note.setVisible(False)
                if image.image is not None:
                    image.clear()
                continue
            if image.image is not cell.image:
                image.setImage(cell.image)
            if note.isVisible() == cell.computed:
                note.setVisible(not cell.computed)
            if not cell.computed:
                note.setPos(cell.image.shape[1] / 2, cell.image.shape[0] / 2)
            if view.autoRangeEnabled()[0]:
                view.autoRange(padding=0)
                view.disableAutoRange()

    # -- user intent ----------------------------------------------------------------------------
    def cell_at(self, scene_pos: QPointF) -> tuple[int, str, int, int] | None:
        """(layer, quantity, row, column) of the heatmap pixel under a scene position."""
        for (layer, name), (view, image, _note) in self.cells.items():
            if view.sceneBoundingRect().contains(scene_pos) and image.image is not None:
                point = view.mapSceneToView(scene_pos)
                row, col = int(np.floor(point.y())), int(np.floor(point.x()))
                rows, cols = image.image.shape[:2]
                if 0 <= row < rows and 0 <= col < cols:
                    return layer, name, row, col
        return None

    def _on_hover(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is not None:
            self.hovered.emit(*cell)

    def _on_click(self, event: Any) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is None:
            return
        if event.button() == Qt.MouseButton.RightButton:
            event.accept()
            self.context_menu.emit(*cell)
        else:
            (self.double_clicked if event.double() else self.clicked).emit(*cell)
