"""The Display dock: each frame view's colour map and levels, with a histogram of its values and
a draggable levels region (as pyqtgraph's ImageView has).

The view model owns the choices (``Session.set_display``) and draws the images; this widget
shows them and forwards what the user picks.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QVBoxLayout,
    QWidget,
)

from mimviewer.viewmodel import Session
from mimviewer.viewmodel.display import COLOUR_MAPS, LEVEL_MODES

VIEW_NAMES = {"gt": "ground truth", "pred": "prediction", "diff": "difference"}


def view_label(session: Session, view: str) -> str:
    if view == "gt":
        return "ground truth"
    slot = session.slots[int(view[-1])]
    name = slot.name if slot is not None else view
    return f"{VIEW_NAMES[view[:-1]]} · {name}"


class DisplayPanel(QWidget):
    """View chooser, colour map, levels rule, percentile, link, and the histogram."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._stale = True  # settings changed while hidden: refresh when shown
        self.view = QComboBox()
        self.view.setToolTip("Which frame view the settings below apply to")
        self.colour_map = QComboBox()
        self.colour_map.setToolTip("Colour map of this view")
        self.levels = QComboBox()
        for name, label in LEVEL_MODES.items():
            self.levels.addItem(label, name)
        self.levels.setToolTip(
            "Which values the colour map spans: the data's full range, min…max or percentiles over "
            "the timeline, or fixed (drag the histogram's region)"
        )
        self.percentile = QDoubleSpinBox(minimum=0.0, maximum=49.0, singleStep=0.5, decimals=1, suffix=" %")
        self.percentile.setToolTip("Percent of values clipped at each end (percentile levels)")
        self.linked = QCheckBox("same for every view of its kind")
        self.linked.setToolTip(
            "Link colour map and levels across views (frames with frames, differences with differences)"
        )
        # The histogram and levels, as ImageView's: values over the timeline, a draggable region
        # for the levels and the colour map beneath. (pyqtgraph's HistogramLUTWidget would do,
        # but its gradient menu imports matplotlib's colour maps when built: 0.4 s at start-up.)
        self.histogram = pg.PlotWidget()
        self.histogram.setToolTip("Values of this view over the timeline; drag the region to fix the levels")
        self.histogram.setMinimumHeight(140)
        self.histogram.hideButtons()
        self.histogram.setMenuEnabled(False)
        self.histogram.setMouseEnabled(x=False, y=False)
        self.histogram.hideAxis("left")
        self.counts = self.histogram.plot(fillLevel=0, brush=(100, 100, 220, 120), pen=(80, 80, 200))
        self.strip = pg.ImageItem()  # the colour map from the low level to the high one
        self.histogram.addItem(self.strip)
        self.levels_region = pg.LinearRegionItem(values=(0, 1), brush=(250, 200, 0, 40))
        self.levels_region.setZValue(10)
        self.levels_region.sigRegionChangeFinished.connect(self._on_region)
        self.histogram.addItem(self.levels_region)

        form = QFormLayout()
        form.addRow("view", self.view)
        form.addRow("colour map", self.colour_map)
        form.addRow("levels", self.levels)
        form.addRow("clip", self.percentile)
        form.addRow("", self.linked)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.histogram, 1)

        self.view.currentIndexChanged.connect(lambda _: self.refresh())
        self.colour_map.currentIndexChanged.connect(
            lambda _: self._forward(colour_map=self.colour_map.currentData())
        )
        self.levels.currentIndexChanged.connect(lambda _: self._forward(levels=self.levels.currentData()))
        self.percentile.valueChanged.connect(lambda v: self._forward(percentile=v, levels="percentile"))
        self.linked.toggled.connect(lambda on: setattr(session, "linked", on))
        session.events.models.connect(lambda _slot: self.rebuild())
        session.events.sequence.connect(lambda: self.rebuild())
        session.events.display.connect(lambda _view: self.refresh())
        session.events.finished.connect(lambda _slot: self.refresh())
        self.rebuild()

    @property
    def current(self) -> str:
        return self.view.currentData() or "gt"

    def rebuild(self) -> None:
        current = self.current
        self.view.blockSignals(True)
        self.view.clear()
        for view in self.session.view_names():
            self.view.addItem(view_label(self.session, view), view)
        self.view.setCurrentIndex(max(self.view.findData(current), 0))
        self.view.blockSignals(False)
        self.refresh()

    def select(self, view: str) -> None:
        """Show the settings of one view (the frame views' context menu uses it)."""
        self.view.setCurrentIndex(max(self.view.findData(view), 0))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def refresh(self) -> None:
        """Show the chosen view's settings and histogram (signals blocked: no loops). While the
        dock is hidden (a tab behind another) this waits until it is shown."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        session, view = self.session, self.current
        shown = session.display(view)
        widgets = (self.colour_map, self.levels, self.percentile, self.linked)
        for widget in widgets:
            widget.blockSignals(True)
        self.colour_map.clear()
        for name in session.colour_maps(view):
            self.colour_map.addItem(COLOUR_MAPS[name], name)
        self.colour_map.setCurrentIndex(max(self.colour_map.findData(shown.colour_map), 0))
        self.levels.setCurrentIndex(max(self.levels.findData(shown.levels), 0))
        self.percentile.setValue(shown.percentile)
        self.percentile.setEnabled(shown.levels == "percentile")
        self.linked.setChecked(session.linked)
        for widget in widgets:
            widget.blockSignals(False)
        lo, hi = session.view_levels(view)
        low, high = session.histogram_range(view)
        counts = session.histogram(view)
        top = 1.0
        if counts is not None:
            centres, numbers = counts
            top = float(max(numbers.max(), 1))
            self.counts.setData(centres, numbers)
        else:
            self.counts.clear()
        # the colour strip under the histogram: the map spread from the low level to the high one
        table = session.view_table(view)
        self.strip.setImage(table[None, :, :], autoLevels=False)
        self.strip.setRect(QRectF(lo, -0.12 * top, (hi - lo) or 1e-6, 0.1 * top))
        self.histogram.setXRange(low, high, padding=0.02)
        self.histogram.setYRange(-0.12 * top, top, padding=0.02)
        self.levels_region.blockSignals(True)
        self.levels_region.setRegion((lo, hi))
        self.levels_region.blockSignals(False)

    def _forward(self, **changes) -> None:
        self.session.set_display(self.current, **changes)

    def _on_region(self, *_args) -> None:
        lo, hi = self.levels_region.getRegion()
        self.session.set_display(self.current, levels="fixed", fixed=(float(lo), float(hi)))
