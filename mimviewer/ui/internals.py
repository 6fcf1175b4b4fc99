"""The internals panel: the heatmap grid, reduction and probe settings, curves of the two tails."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QGraphicsItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mimviewer.errors import ConfigError
from mimviewer.quantities import display_name
from mimviewer.render import TABLES
from mimviewer.trace_spec import QUANTITIES
from mimviewer.ui import Cursor, cache_curve, cache_static_parts, no_paint_calls
from mimviewer.ui.heatmap_grid import HeatmapGrid
from mimviewer.ui.images import DisplayImage
from mimviewer.viewmodel import REDUCTIONS, Session

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
        if not np.isfinite(data).any():
            self.label.setText(f"step {step} · not computed at this step")
        rgb = data.ndim == 3  # the two-colour split: blue = share below, red = share above
        self.bar.setVisible(not rgb)
        self.bar.setColorMap(colour_map(lut_for(levels)))
        if rgb:
            self.image.setLookupTable(None)
            self.image.setImage(np.nan_to_num(data), autoLevels=False, levels=(0.0, 1.0))
            return
        self.image.setLookupTable(lut_for(levels))
        self.image.setImage(data, autoLevels=False)
        self.bar.setLevels(levels)


class InternalsPanel(QWidget):
    """Heatmaps of the chosen quantities for the current step; the session does the maths."""

    # New settings, but the raw values were too big to keep: inference must run again.
    rerun_requested = Signal()
    # A heatmap pixel was clicked / hovered: (slot, row, column) of the grid cell.
    location_clicked = Signal(int, int, int)

    MOUSE_ACTIONS = (
        ("heatmaps", "hover: read the value under the cursor; double-click: enlarge with its colour bar"),
        ("heatmaps", "click a map: plot that location over the steps"),
        ("heatmaps", "right-click: reset zoom, copy image, export this heatmap, copy the value"),
    )
    location_hovered = Signal(int, int, int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setProperty("toggle_host", True)  # the theme styles its quantity toggles
        self.slot = 0
        self.dialogs: list[HeatmapDialog] = []
        self.hovered: tuple[int, str, int, int] | None = None  # the cell the readout describes

        self.model_choice = QComboBox()
        self.model_choice.setToolTip("Which model's internals (the compared model's too)")
        self.model_choice.currentIndexChanged.connect(self._on_model_choice)
        self.reduction = QComboBox()
        for name, label in REDUCTIONS.items():
            self.reduction.addItem(label, name)
        self.reduction.setToolTip(
            "How the channels of each quantity become one map. Below/above are measured by kind: "
            "gates saturated (< lo, > hi), states large (< -a, > +a), dH changing (<= -eps, >= +eps)"
        )
        self.reduction.currentIndexChanged.connect(
            lambda _: setattr(session, "reduction", self.reduction.currentData())
        )
        lo, hi = session.thresholds
        self.lo = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=lo)
        self.hi = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=hi)
        self.lo.setToolTip("A gate below lo counts as saturated low (lo < hi)")
        self.hi.setToolTip("A gate above hi counts as saturated high (lo < hi)")
        self.lo.valueChanged.connect(self._on_thresholds)
        self.hi.valueChanged.connect(self._on_thresholds)
        self.bound = QDoubleSpinBox(minimum=0.01, maximum=100.0, singleStep=0.1, decimals=2)
        self.bound.setValue(session.state_bound)
        self.bound.setToolTip("a: a state (C, M, N, S, H, ...) with |x| > a counts as large")
        self.bound.valueChanged.connect(lambda value: self._apply(state_bound=value))
        self.eps = QDoubleSpinBox(minimum=1e-6, maximum=10.0, singleStep=1e-3, decimals=6)
        self.eps.setValue(session.eps)
        self.eps.setToolTip("dH with |dH| < eps counts as still (no temporal change)")
        self.eps.valueChanged.connect(lambda value: self._apply(eps=value))
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
        controls.addWidget(QLabel("gates: below lo"), 2, 0)
        controls.addWidget(self.lo, 2, 1)
        controls.addWidget(QLabel("above hi"), 2, 2)
        controls.addWidget(self.hi, 2, 3)
        controls.addWidget(QLabel("states: |x| > a"), 3, 0)
        controls.addWidget(self.bound, 3, 1)
        controls.addWidget(QLabel("dH still: |dH| < eps"), 3, 2)
        controls.addWidget(self.eps, 3, 3)
        controls.addWidget(QLabel("show"), 4, 0)
        controls.addWidget(self.quantity_box, 4, 1, 1, 3)
        self.controls = controls

        self.grid = HeatmapGrid(session)
        self.grid.hovered.connect(self._on_hover)
        self.grid.clicked.connect(self._on_click)
        self.grid.context_menu.connect(self._on_context_menu)
        self.grid.double_clicked.connect(lambda layer, name, *_: self.enlarge(layer, name))
        self.hover = QLabel(
            "One colour scale per quantity row (bar and units at its end). Hover a heatmap to read "
            "it; click for every quantity at that location over time; double-click to enlarge."
        )
        self.hover.setWordWrap(True)
        self.curve_quantity = QComboBox()
        self.curve_quantity.setToolTip("Quantity whose shares below (dashed) and above (solid) are plotted")
        self.curve_quantity.currentIndexChanged.connect(lambda _: self.refresh_curves())
        self.curves = pg.PlotWidget()
        self.curves.setMinimumHeight(120)
        self.curves.setMouseEnabled(x=False, y=False)
        self.curves.hideButtons()
        self.curves.showGrid(x=True, y=True, alpha=0.3)
        self.curves.setLabel("bottom", "step")
        self.curves.setLabel("left", "share")
        self.curves.setYRange(0, 1)
        self.legend = self.curves.addLegend(offset=(-10, 5))
        # the step cursor moves on every frame: what it crosses repaints from pixmaps
        self.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        cache_static_parts(self.curves.plotItem)
        no_paint_calls(self.curves.plotItem)
        self.curve_cursor = Cursor(self.curves.plotItem, "k")
        self.theme_cursors = (self.curve_cursor,)
        self.curves.setXRange(0, 18)
        self.curve_measure = QLabel()
        curve_head = QHBoxLayout()
        curve_head.addWidget(QLabel("over time:"))
        curve_head.addWidget(self.curve_quantity, 1)
        curve_head.addWidget(self.curve_measure, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(controls)
        layout.addWidget(self.grid, 3)
        layout.addWidget(self.hover)
        layout.addLayout(curve_head)
        layout.addWidget(self.curves, 1)

        session.events.models.connect(lambda slot: self.rebuild())
        session.events.sequence.connect(lambda: self.rebuild())
        session.events.internals.connect(lambda: self.refresh())
        session.events.frame.connect(lambda frame: self.refresh_images())
        session.events.step.connect(self._on_step)
        self.rebuild()

    @property
    def cells(self) -> dict[tuple[int, str], tuple[pg.ViewBox, DisplayImage]]:
        """(layer, quantity) -> (view, image) of every heatmap in the grid."""
        return {k: (view, image) for k, (view, image, _note) in self.grid.cells.items()}

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
            button = QToolButton(text=display_name(name))
            button.setCheckable(True)
            button.setProperty("toggle", True)  # styled by the theme: checked ones filled
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

        current = self.curve_quantity.currentData()
        names = session.available_quantities(self.slot)
        self.curve_quantity.blockSignals(True)
        self.curve_quantity.clear()
        for name in names:
            self.curve_quantity.addItem(display_name(name), name)
        index = self.curve_quantity.findData(current if current in names else "f")
        self.curve_quantity.setCurrentIndex(max(index, 0))
        self.curve_quantity.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """Quantities, reduction or settings changed: re-lay the grid, redraw images and curves."""
        session = self.session
        for name, button in self.quantity_buttons.items():
            button.blockSignals(True)
            button.setChecked(name in session.quantities)
            button.blockSignals(False)
        self.reduction.blockSignals(True)
        self.reduction.setCurrentIndex(self.reduction.findData(session.reduction))
        self.reduction.blockSignals(False)
        self.channel.setEnabled(session.reduction == "channel")
        settings = session.probe_settings  # the boxes follow the session (set from code, or refused)
        for box, value in (
            (self.lo, settings.lo),
            (self.hi, settings.hi),
            (self.bound, settings.state_bound),
            (self.eps, settings.eps),
            (self.channel, settings.channel),
        ):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self._layout_grid()
        self.refresh_images()
        self.refresh_curves()

    def _layout_grid(self) -> None:
        session = self.session
        shown = [n for n in session.quantities if n in session.available_quantities(self.slot)]
        self.grid.rebuild(self.slot, shown)

    def refresh_images(self) -> None:
        self.grid.refresh(lut_for)
        self.curve_cursor.setValue(self.session.step_of_frame())
        if self.hovered is not None:  # the readout follows the frame (keys, slider, playback)
            self.hover.setText(self.describe_cell(*self.hovered))

    def refresh_curves(self) -> None:
        self.curves.clear()
        self.curve_cursor.attach()
        name = self.curve_quantity.currentData()
        if not name:
            self.curve_measure.setText("")
            return
        self.curve_measure.setText(self.session.measure(name, self.slot))
        for layer, (low, high) in self.session.split_curves(name, slot=self.slot).items():
            colour = LAYER_PENS[layer % len(LAYER_PENS)]
            steps = np.arange(len(low))
            # NaN (not computed at a step) breaks a curve there
            above = self.curves.plot(
                steps, high, pen=pg.mkPen(colour, width=2), connect="finite", name=f"L{layer} above"
            )
            below = self.curves.plot(
                steps,
                low,
                pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine),
                connect="finite",
                name=f"L{layer} below",
            )
            cache_curve(above)
            cache_curve(below)
        for sample, label in self.legend.items:
            for part in (sample, label, label.item):
                part.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
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
        self.rebuild()

    def _on_quantities(self) -> None:
        chosen = [n for n, b in self.quantity_buttons.items() if b.isChecked()]
        others = [n for n in self.session.quantities if n not in self.quantity_buttons]
        self.session.quantities = chosen + others  # keep what only the other model has

    def _on_thresholds(self) -> None:
        lo, hi = self.lo.value(), self.hi.value()
        if not lo < hi:  # refused: put the boxes back to the session's values
            for box, value in zip((self.lo, self.hi), self.session.thresholds, strict=True):
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
            self.hover.setText(f"refused: the thresholds need lo < hi (got lo={lo:g}, hi={hi:g})")
            return
        self._apply(lo=lo, hi=hi)

    def _on_channel(self, value: int) -> None:
        self._apply(channel=value)

    def _apply(self, **changes: float | int) -> None:
        try:
            self.session.update_settings(**changes)
        except ConfigError as error:
            self.hover.setText(f"refused: {error}")
            return
        if self.session.needs_rerun:
            self.rerun_requested.emit()

    def describe_cell(self, layer: int, name: str, row: int, col: int) -> str:
        session = self.session
        step = session.step_of_frame()
        where = (
            f"unit {row}, step {col}" if session.is_vector(layer, name, self.slot) else f"x={col}, y={row}"
        )
        head = f"layer {layer} · {describe(name)} · step {step} · {where} · {REDUCTIONS[session.reduction]}"
        data = session.heatmap(layer, name, step, slot=self.slot)
        if data is None or row >= data.shape[0] or col >= data.shape[1]:
            return f"{head}: not computed yet"
        value = data[row, col]
        if session.reduction == "split":
            return f"{head}: below {value[2]:.4g}, above {value[0]:.4g} ({session.measure(name, self.slot)})"
        if not np.isfinite(value).all():
            return f"{head}: not computed at this step"
        return f"{head} = {float(value):.4g}"

    def _on_hover(self, layer: int, name: str, row: int, col: int) -> None:
        self.hovered = (layer, name, row, col)
        self.hover.setText(self.describe_cell(layer, name, row, col))
        if not self.session.is_vector(layer, name, self.slot):
            self.location_hovered.emit(self.slot, row, col)

    def _on_context_menu(self, layer: int, name: str, row: int, col: int) -> None:
        from mimviewer.ui.context_menus import heatmap_menu

        heatmap_menu(self, layer, name, row, col).popup(QCursor.pos())

    def _on_click(self, layer: int, name: str, row: int, col: int) -> None:
        if not self.session.is_vector(layer, name, self.slot):
            self.location_clicked.emit(self.slot, row, col)
        else:
            self.enlarge(layer, name)

    def cell_at(self, scene_pos):
        return self.grid.cell_at(scene_pos)

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
