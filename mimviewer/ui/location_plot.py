"""Per-location time series: every gate and memory of every layer at one grid cell, over all steps.

What LSTMVis does for units, done spatially: click a heatmap pixel (or a state cell) and
one small plot per quantity (grouped by module, one curve per layer) shows its value at
that location over the whole rollout, with the thresholds of its kind drawn (gates: lo and
hi; states: -a and +a; dH: -eps and +eps) and a cursor at the current step. Pinned, it
stays at the clicked location; unpinned, it follows the cursor over the grid. The values
come from the view model (``Session.location_series``), the same numbers as the heatmaps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from mimviewer.quantities import display_name, grouped

LAYER_PENS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777")
COLUMNS = 4  # small plots per row
PLOT_HEIGHT = 130


class LocationPlot(QWidget):
    """See the module docstring. ``show_location`` pins; ``follow`` moves it while unpinned."""

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.location: tuple[int, int, int] | None = None  # slot, row, column
        self.pin = QCheckBox("pinned")
        self.pin.setChecked(True)
        self.pin.setToolTip(
            "Pinned: stays at the clicked location; off: follows the cursor over the heatmaps"
        )
        self.title = QLabel("Click a heatmap pixel to see every gate and memory there over time.")
        self.title.setWordWrap(True)
        self.canvas = pg.GraphicsLayoutWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.canvas)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.pin)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(head)
        layout.addWidget(scroll, 1)
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[tuple[int, str], pg.PlotDataItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        session.events.frame.connect(self._move_cursor)
        session.events.internals.connect(self.redraw)
        session.events.step.connect(self._on_step)

    def show_location(self, slot: int, row: int, col: int) -> None:
        """Pin the plots to one grid cell of one model."""
        self.location = (slot, row, col)
        self.redraw()

    def follow(self, slot: int, row: int, col: int) -> None:
        """The cursor moved over a heatmap: follow it unless pinned."""
        if not self.pin.isChecked() and self.location != (slot, row, col):
            self.show_location(slot, row, col)

    def redraw(self, *_args: object) -> None:
        self.canvas.clear()
        self.plots, self.curves, self.cursors = {}, {}, []
        if self.location is None:
            return
        slot, row, col = self.location
        series = self.session.location_series(row, col, slot=slot)  # (layer, name) -> (steps,)
        if not series:
            self.title.setText("No internals recorded for this model yet.")
            return
        names = list(dict.fromkeys(name for _, name in series))
        step = self.session.step_of_frame()
        layers = sorted({layer for layer, _ in series})
        legend = " ".join(
            f"<span style='color:{LAYER_PENS[layer % len(LAYER_PENS)]}'>■ layer {layer}</span>"
            for layer in layers
        )
        self.title.setText(
            f"{self.session.slots[slot].name} · grid cell y={row}, x={col} · "
            f"{self.session.location_reduction_label()} · dashed: thresholds · {legend}"
        )
        for group, members in grouped(names):
            self.canvas.addLabel(f"<b>{group}</b>", colspan=COLUMNS, justify="left")
            self.canvas.nextRow()
            for index, name in enumerate(members, start=1):
                plot = self.canvas.addPlot(title=display_name(name))
                plot.setMinimumHeight(PLOT_HEIGHT)
                plot.showGrid(x=True, y=True, alpha=0.25)
                plot.setMouseEnabled(x=False, y=False)
                plot.hideButtons()
                for layer in sorted({layer for layer, n in series if n == name}):
                    values = series[(layer, name)]
                    pen = pg.mkPen(LAYER_PENS[layer % len(LAYER_PENS)], width=2)
                    # NaN (not computed at a step) breaks the curve there
                    self.curves[(layer, name)] = plot.plot(
                        np.arange(len(values)), values, pen=pen, connect="finite", name=f"layer {layer}"
                    )
                for bound in self.session.location_bounds(name, slot=slot):
                    plot.addItem(
                        pg.InfiniteLine(bound, angle=0, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine))
                    )
                cursor = pg.InfiniteLine(step, angle=90, pen=pg.mkPen("k"))
                plot.addItem(cursor)
                self.cursors.append(cursor)
                self.plots[name] = plot
                if index % COLUMNS == 0:
                    self.canvas.nextRow()
            self.canvas.nextRow()
        self.canvas.setMinimumHeight(sum(PLOT_HEIGHT + 30 for _ in range(0, len(self.plots), COLUMNS)) + 200)

    def update_values(self) -> None:
        """New steps arrived: new data for the same curves."""
        if self.location is None:
            return
        slot, row, col = self.location
        series = self.session.location_series(row, col, slot=slot)
        if set(series) != set(self.curves):
            self.redraw()
            return
        for k, curve in self.curves.items():
            values = series[k]
            curve.setData(np.arange(len(values)), values, connect="finite")

    def _move_cursor(self, *_args: object) -> None:
        step = self.session.step_of_frame()
        for cursor in self.cursors:
            cursor.setValue(step)

    def _on_step(self, slot: int, _t: int) -> None:
        if self.location is not None and slot == self.location[0]:
            self.update_values()
