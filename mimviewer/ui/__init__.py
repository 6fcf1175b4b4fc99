"""The desktop app (Qt only: draws and forwards events; no tensor maths here)."""

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt

# Arrays from the engine are (rows, cols[, rgb]): tell pyqtgraph so, once for every view.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")

CONTEXT_COLOUR = "#2563eb"  # frames the model read (context): blue
PREDICTED_COLOUR = "#ea580c"  # frames the model predicted on its own: orange


def cache_static_parts(plot) -> None:
    """Keep a plot's axes (with their grid) as pixmaps, redrawn only when the range changes.

    A moving cursor line repaints the region it crosses; without the cache every axis
    replays its whole picture (ticks, labels, grid) on every frame step.
    """
    from PySide6.QtWidgets import QGraphicsItem

    for axis in plot.axes.values():
        axis["item"].setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def cache_curve(curve) -> None:
    """Keep a PlotDataItem's line and symbols as pixmaps (a cursor crossing them repaints them)."""
    from PySide6.QtWidgets import QGraphicsItem

    for part in (curve.curve, curve.scatter):
        part.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def cache_labels(layout) -> None:
    """Keep every text label of a GraphicsLayout as a pixmap: images changing next to a label
    repaint the region around it, and laying out text (rotated, even) again is slow."""
    from PySide6.QtWidgets import QGraphicsItem

    for item in layout.items:
        if isinstance(item, pg.LabelItem):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            item.item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def no_paint_calls(*items) -> None:
    """Mark pyqtgraph containers that paint nothing themselves (labels, plot items, colour bars,
    view boxes without a border; those of a GraphicsLayout too) as such: Qt then never asks
    them (Python) for their bounds on each repaint of the scene; their children still paint."""
    from PySide6.QtWidgets import QGraphicsItem

    no_contents = QGraphicsItem.GraphicsItemFlag.ItemHasNoContents
    for item in items:
        if isinstance(item, pg.GraphicsLayout):
            no_paint_calls(*item.items)
        elif isinstance(item, pg.ViewBox):
            if item.border is None:
                item.setFlag(no_contents)
        elif isinstance(item, pg.PlotItem):  # colour bars too
            item.setFlag(no_contents)
            no_paint_calls(item.vb)
        elif isinstance(item, pg.LabelItem):
            item.setFlag(no_contents)


class Cursor:
    """A vertical line at the current frame / step of a plot: Qt's own line item (no Python in
    its paint path, unlike an InfiniteLine), kept as tall as the plot's y range."""

    def __init__(self, plot_item, colour: str, width: int = 1) -> None:
        from PySide6.QtGui import QPen
        from PySide6.QtWidgets import QGraphicsLineItem

        self.view = plot_item.getViewBox()
        self.line = QGraphicsLineItem()
        pen = QPen(pg.mkColor(colour))
        pen.setWidth(width)
        pen.setCosmetic(True)
        self.line.setPen(pen)
        self.line.setZValue(10)
        self._value = 0.0
        self.view.addItem(self.line, ignoreBounds=True)
        self.view.sigYRangeChanged.connect(lambda *_: self._place())
        self._place()

    def value(self) -> float:
        return self._value

    def setValue(self, value: float) -> None:
        if value != self._value:
            self._value = float(value)
            self._place()

    def setPen(self, pen) -> None:
        self.line.setPen(pen)

    def _place(self) -> None:
        low, high = self.view.viewRange()[1]
        self.line.setLine(self._value, low, self._value, high)

    def attach(self) -> None:
        """Put the line back after the plot was cleared."""
        if self.line.scene() is None:
            self.view.addItem(self.line, ignoreBounds=True)


def legend_label():
    """A legend beside a plot, outside its plotting area (a pyqtgraph legend covers the curves)."""
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    label.setToolTip("Which colour is which curve")
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def set_legend(label, entries: list[tuple[str, str]]) -> None:
    """Show (colour, name) entries, one per line, each with a swatch of its colour."""
    rows = "<br>".join(
        f"<span style='color:{colour}'>━━</span> {html.escape(name)}" for colour, name in entries
    )
    label.setText(rows)


def steady_label():
    """A QLabel whose size hints never change with its text: a text set on every frame step
    then repaints the label only, instead of asking every enclosing layout (up to the main
    window's docks) to lay itself out again."""
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QLabel

    class SteadyLabel(QLabel):
        def sizeHint(self) -> QSize:
            return QSize(self.minimumWidth() or 120, self.minimumHeight() or 20)

        def minimumSizeHint(self) -> QSize:
            return self.sizeHint()

    label = SteadyLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
