"""The internals panel: heatmap grid (layers x quantities), reduction, thresholds, saturation curves."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mimviewer.render import TABLES
from mimviewer.trace import QUANTITIES
from mimviewer.viewmodel import REDUCTIONS, Session, is_gate

QUANTITIES_PER_ROW = 10  # the quantity toggles wrap, so that MIM's ~25 names fit a narrow panel
LAYER_PENS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777")


def lut_for(levels: tuple[float, float]) -> np.ndarray:
    """Sequential colours for [0, x] ranges, diverging ones for ranges around zero."""
    return TABLES["diverging" if levels[0] < 0 else "viridis"]


def colour_map(lut: np.ndarray) -> pg.ColorMap:
    return pg.ColorMap(np.linspace(0.0, 1.0, len(lut)), lut)


def describe(name: str) -> str:
    return f"{name}: {QUANTITIES.get(name, name)}"


class HeatmapDialog(QDialog):
    """One heatmap enlarged, with its own colour bar; follows the current frame."""

    def __init__(
        self, session: Session, slot: int, layer: int, name: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session, self.slot, self.layer, self.name = session, slot, layer, name
        self.setWindowTitle(f"layer {layer} · {describe(name)}")
        self.resize(560, 500)
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(values=(0, 1), interactive=False, width=16)
        self.bar.setImageItem(self.image, insert_in=self.plot.plotItem)
        self.label = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.label)
        session.events.frame.connect(self._refresh)
        session.events.internals.connect(self._refresh)
        session.events.step.connect(self._refresh)
        self.finished.connect(self._disconnect)
        self._refresh()

    def show_cell(self, slot: int, layer: int, name: str) -> None:
        """Show another heatmap in this same dialog (a click elsewhere in the grid)."""
        self.slot, self.layer, self.name = slot, layer, name
        self.setWindowTitle(f"layer {layer} · {describe(name)}")
        self._refresh()

    def _disconnect(self, *_args) -> None:
        for event in (self.session.events.frame, self.session.events.internals, self.session.events.step):
            event.disconnect(self._refresh)

    def _refresh(self, *_args) -> None:
        session = self.session
        step = session.step_of_frame()
        data = session.heatmap(self.layer, self.name, step, slot=self.slot)
        levels = session.heatmap_levels(self.layer, self.name, slot=self.slot)
        self.label.setText(
            f"step {step} · {REDUCTIONS[session.reduction]} · range {levels[0]:.3g} … {levels[1]:.3g}"
        )
        if data is None:
            self.image.clear()
            return
        self.bar.setColorMap(colour_map(lut_for(levels)))
        self.image.setImage(data, autoLevels=False)
        self.bar.setLevels(levels)


class InternalsPanel(QWidget):
    """Heatmaps of the chosen quantities for the current step; the session does the maths."""

    # New thresholds or channel, but the raw values were too big to keep: inference must run again.
    rerun_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.slot = 0
        self.dialogs: list[HeatmapDialog] = []

        self.model_choice = QComboBox()
        self.model_choice.setToolTip("Which model's internals")
        self.model_choice.currentIndexChanged.connect(self._on_model_choice)
        self.reduction = QComboBox()
        for name, label in REDUCTIONS.items():
            self.reduction.addItem(label, name)
        self.reduction.setToolTip("How the channels of each quantity become one map")
        self.reduction.currentIndexChanged.connect(
            lambda _: setattr(session, "reduction", self.reduction.currentData())
        )
        self.lo = QDoubleSpinBox(
            minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=session.thresholds[0]
        )
        self.hi = QDoubleSpinBox(
            minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=session.thresholds[1]
        )
        for box, tip in ((self.lo, "saturated low below"), (self.hi, "saturated high above")):
            box.setToolTip(f"A unit counts as {tip} this value")
            box.valueChanged.connect(self._on_thresholds)
        self.channel = QSpinBox(minimum=0, maximum=4095, value=session.channel)
        self.channel.setToolTip("Channel shown by the 'one channel' reduction")
        self.channel.valueChanged.connect(self._on_channel)
        self.quantity_box = QWidget()  # replaced whole on every rebuild
        self.quantity_buttons: dict[str, QToolButton] = {}

        controls = QGridLayout()
        controls.addWidget(QLabel("model"), 0, 0)
        controls.addWidget(self.model_choice, 0, 1, 1, 3)
        controls.addWidget(QLabel("reduction"), 1, 0)
        controls.addWidget(self.reduction, 1, 1)
        controls.addWidget(QLabel("channel"), 1, 2)
        controls.addWidget(self.channel, 1, 3)
        controls.addWidget(QLabel("saturated below"), 2, 0)
        controls.addWidget(self.lo, 2, 1)
        controls.addWidget(QLabel("or above"), 2, 2)
        controls.addWidget(self.hi, 2, 3)
        controls.addWidget(QLabel("show"), 3, 0)
        controls.addWidget(self.quantity_box, 3, 1, 1, 3)
        self.controls = controls

        self.grid = pg.GraphicsLayoutWidget()
        self.grid.scene().sigMouseMoved.connect(self._on_hover)
        self.grid.scene().sigMouseClicked.connect(self._on_click)
        self.hover = QLabel(
            "Colours: gates and fractions from 0 (purple) to 1 (yellow); other quantities blue (−) to "
            "red (+), scaled to each cell's largest value. Hover a heatmap to read it; click to enlarge."
        )
        self.hover.setWordWrap(True)
        self.curve_quantity = QComboBox()
        self.curve_quantity.setToolTip("Quantity whose saturated fraction is plotted per layer")
        self.curve_quantity.currentTextChanged.connect(lambda _: self.refresh_curves())
        self.curves = pg.PlotWidget()
        self.curves.setMinimumHeight(150)
        self.curves.setMouseEnabled(x=False, y=False)
        self.curves.hideButtons()
        self.curves.showGrid(x=True, y=True, alpha=0.3)
        self.curves.setLabel("bottom", "step")
        self.curves.setLabel("left", "saturated fraction")
        self.curves.setYRange(0, 1)
        self.curves.addLegend(offset=(-10, 5))
        self.curve_cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("k", width=1))
        self.curves.addItem(self.curve_cursor)
        self.curves.setXRange(0, 18)
        curve_head = QHBoxLayout()
        curve_head.addWidget(QLabel("saturation over time of"))
        curve_head.addWidget(self.curve_quantity, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(controls)
        layout.addWidget(self.grid, 3)
        layout.addWidget(self.hover)
        layout.addLayout(curve_head)
        layout.addWidget(self.curves, 1)

        self.cells: dict[tuple[int, str], tuple[pg.ViewBox, pg.ImageItem]] = {}
        session.events.models.connect(lambda slot: self.rebuild())
        session.events.sequence.connect(lambda: self.rebuild())
        session.events.internals.connect(lambda: self.refresh())
        session.events.frame.connect(lambda frame: self.refresh_images())
        session.events.step.connect(self._on_step)
        self.rebuild()

    # -- structure ------------------------------------------------------------------------
    def rebuild(self) -> None:
        """New model(s) or quantities: rebuild the controls and the grid's cells."""
        session = self.session
        self.model_choice.blockSignals(True)
        self.model_choice.clear()
        for index, slot in session.models:
            self.model_choice.addItem(slot.name, index)
        if self.slot not in [i for i, _ in session.models]:
            self.slot = 0
        self.model_choice.setCurrentIndex(max(self.model_choice.findData(self.slot), 0))
        self.model_choice.setEnabled(len(session.models) > 1)
        self.model_choice.blockSignals(False)

        box = QWidget()
        rows = QVBoxLayout(box)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        self.quantity_buttons = {}
        row = None
        for name in session.available_quantities(self.slot):
            if len(self.quantity_buttons) % QUANTITIES_PER_ROW == 0:
                if row is not None:
                    row.addStretch(1)
                row = QHBoxLayout()
                row.setSpacing(2)
                rows.addLayout(row)
            button = QToolButton(text=name)
            button.setCheckable(True)
            button.setChecked(name in session.quantities)
            button.setToolTip(describe(name))
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.toggled.connect(self._on_quantities)
            row.addWidget(button)
            self.quantity_buttons[name] = button
        if row is not None:
            row.addStretch(1)
        self.controls.replaceWidget(self.quantity_box, box)
        self.quantity_box.deleteLater()
        self.quantity_box = box

        gates = [q for q in session.available_quantities(self.slot) if is_gate(q)]
        current = self.curve_quantity.currentText()
        self.curve_quantity.blockSignals(True)
        self.curve_quantity.clear()
        self.curve_quantity.addItems(gates)
        self.curve_quantity.setCurrentText(current if current in gates else ("f" if "f" in gates else ""))
        self.curve_quantity.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """Quantities, reduction or thresholds changed: re-lay the grid, redraw images and curves."""
        session = self.session
        for name, button in self.quantity_buttons.items():
            button.blockSignals(True)
            button.setChecked(name in session.quantities)
            button.blockSignals(False)
        self.reduction.blockSignals(True)
        self.reduction.setCurrentIndex(self.reduction.findData(session.reduction))
        self.reduction.blockSignals(False)
        self.channel.setEnabled(session.reduction == "channel")
        self._layout_grid()
        self.refresh_images()
        self.refresh_curves()

    def _layout_grid(self) -> None:
        self.grid.clear()
        self.cells = {}
        session = self.session
        layers = session.num_layers(self.slot)
        names = session.quantities
        if not layers or not names:
            self.grid.addLabel("no model loaded" if not layers else "choose quantities to show", 0, 0)
            return
        for col, name in enumerate(names):
            self.grid.addLabel(f"<b>{name}</b>", row=0, col=col + 1, size="10pt")
        for layer in range(layers):
            self.grid.addLabel(f"layer {layer}", row=layer + 1, col=0, angle=-90, size="9pt")
            for col, name in enumerate(names):
                if not session.has(layer, name, self.slot):
                    self.grid.addLabel("—", row=layer + 1, col=col + 1)
                    continue
                view = self.grid.addViewBox(
                    row=layer + 1,
                    col=col + 1,
                    # unit x step maps of the 1-D family are long and thin: let them fill the cell
                    lockAspect=not session.is_vector(layer, name, self.slot),
                    invertY=True,
                    enableMenu=False,
                )
                view.setMouseEnabled(False, False)
                image = pg.ImageItem()
                view.addItem(image)
                self.cells[(layer, name)] = (view, image)

    def refresh_images(self) -> None:
        session = self.session
        step = session.step_of_frame()
        for (layer, name), (view, image) in self.cells.items():
            data = session.heatmap(layer, name, step, slot=self.slot)
            if data is None:
                image.clear()
                continue
            levels = session.heatmap_levels(layer, name, slot=self.slot)
            image.setLookupTable(lut_for(levels))
            image.setImage(data, autoLevels=False, levels=levels)
            if view.autoRangeEnabled()[0]:
                view.autoRange(padding=0)
                view.disableAutoRange()
        self.curve_cursor.setValue(step)

    def refresh_curves(self) -> None:
        self.curves.clear()
        self.curves.addItem(self.curve_cursor)
        name = self.curve_quantity.currentText()
        if not name:
            return
        for layer, values in self.session.saturation_curves(name, slot=self.slot).items():
            pen = pg.mkPen(LAYER_PENS[layer % len(LAYER_PENS)], width=2)
            self.curves.plot(np.arange(len(values)), values, pen=pen, name=f"layer {layer}")
        self.curves.setYRange(0, 1)
        self.curves.setXRange(0, max(self.session.steps - 1, 1) if self.session.models else 18)

    # -- user intent ---------------------------------------------------------------------------
    def _on_step(self, slot: int, t: int) -> None:
        if slot == self.slot:
            if t == 0:  # the first maps tell which quantities are unit vectors
                self._layout_grid()
            if t == self.session.step_of_frame() or t == 0:
                self.refresh_images()
            self.refresh_curves()

    def _on_model_choice(self, _index: int) -> None:
        data = self.model_choice.currentData()
        self.slot = int(data) if data is not None else 0
        self.refresh()

    def _on_quantities(self) -> None:
        self.session.quantities = [n for n, b in self.quantity_buttons.items() if b.isChecked()]

    def _on_thresholds(self) -> None:
        self.session.set_thresholds(self.lo.value(), self.hi.value())
        self._rerun_if_needed()

    def _on_channel(self, value: int) -> None:
        self.session.channel = value
        self._rerun_if_needed()

    def _rerun_if_needed(self) -> None:
        if self.session.needs_rerun:
            self.rerun_requested.emit()

    def cell_at(self, scene_pos: QPointF) -> tuple[int, str, int, int] | None:
        """(layer, quantity, row, column) of the heatmap pixel under a scene position."""
        for (layer, name), (view, image) in self.cells.items():
            if view.sceneBoundingRect().contains(scene_pos) and image.image is not None:
                point = view.mapSceneToView(scene_pos)
                row, col = int(np.floor(point.y())), int(np.floor(point.x()))
                rows, cols = image.image.shape[:2]
                if 0 <= row < rows and 0 <= col < cols:
                    return layer, name, row, col
        return None

    def describe_cell(self, layer: int, name: str, row: int, col: int) -> str:
        session = self.session
        step = session.step_of_frame()
        data = session.heatmap(layer, name, step, slot=self.slot)
        value = float(data[row, col]) if data is not None else float("nan")
        where = (
            f"unit {row}, step {col}" if session.is_vector(layer, name, self.slot) else f"x={col}, y={row}"
        )
        return (
            f"layer {layer} · {describe(name)} · step {step} · {where} · "
            f"{REDUCTIONS[session.reduction]} = {value:.4g}"
        )

    def _on_hover(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is not None:
            self.hover.setText(self.describe_cell(*cell))

    def _on_click(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.enlarge(cell[0], cell[1])

    def enlarge(self, layer: int, name: str) -> HeatmapDialog:
        """The enlarged heatmap: one dialog, reused (and raised) for every later click."""
        if self.dialogs:
            dialog = self.dialogs[-1]
            dialog.show_cell(self.slot, layer, name)
            dialog.show()
            dialog.raise_()
            dialog.activateWindow()
            return dialog
        dialog = HeatmapDialog(self.session, self.slot, layer, name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: self.dialogs.remove(dialog) if dialog in self.dialogs else None)
        self.dialogs.append(dialog)
        dialog.show()
        return dialog
