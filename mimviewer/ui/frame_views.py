"""GT | prediction | difference (| second model): linked image views with colour bars."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QCursor, QFont, QFontMetrics, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGraphicsRectItem,
    QLabel,
    QMenu,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from mimviewer.render import DIVERGING, ColourBar
from mimviewer.ui import CONTEXT_COLOUR, PREDICTED_COLOUR, cache_labels, no_paint_calls, steady_label
from mimviewer.ui.images import DisplayImage, native_qimage
from mimviewer.viewmodel import Session
from mimviewer.viewmodel.display import LEVEL_MODES

BAR_WIDTH = 100  # pixels of a colour bar with its tick labels and title


def colour_bar(bar: ColourBar, table: np.ndarray) -> pg.PlotItem:
    """A vertical bar of ``table``'s colours (256, 3) with the bar's tick labels and title."""
    plot = pg.PlotItem()
    plot.hideButtons()
    plot.setMouseEnabled(False, False)
    plot.setMenuEnabled(False)
    plot.hideAxis("bottom")
    plot.hideAxis("left")
    plot.showAxis("right")
    plot.setMaximumWidth(BAR_WIDTH)
    gradient = pg.ImageItem(table[:, None, :])  # (256, 1, 3): row 0 at the bottom
    gradient.setRect(QRectF(0, 0, 1, 1))
    plot.addItem(gradient)
    plot.setXRange(0, 1, padding=0)
    plot.setYRange(0, 1, padding=0)
    axis = plot.getAxis("right")
    axis.setTicks([list(zip(bar.positions, bar.labels, strict=True))])
    axis.setWidth(BAR_WIDTH - 30)  # room for the longest tick label and the title beside it
    axis.setLabel(bar.title)
    return plot


def _shorten(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _set_fitted(
    label: pg.LabelItem,
    text: str,
    width: int,
    colour: str | None,
    size: str,
    *,
    bold: bool = False,
    keep: str = "",
) -> None:
    """Set ``text + keep`` with ``text`` elided to fit ``width`` pixels: a long title (or one
    marked "(not computed yet)", which ``keep`` holds whole) never widens its column and
    pushes the colour bars out of the window."""
    font = QFont()
    font.setPointSizeF(float(size.removesuffix("pt")))
    font.setBold(bold)
    metrics = QFontMetrics(font)
    room = width - 8 - metrics.horizontalAdvance(keep)
    if room >= 24:
        fitted = metrics.elidedText(text, Qt.TextElideMode.ElideRight, room) + keep
    else:  # a very narrow column: everything elided, the marker included
        fitted = metrics.elidedText(text + keep, Qt.TextElideMode.ElideRight, max(width - 8, 12))
    label.setText(f"<b>{fitted}</b>" if bold else fitted, color=colour, size=size)
    label.setMinimumWidth(0)  # LabelItem asks for its text's width; the elided text already fits


class FramesPanel(QWidget):
    """One image view per column; the session says what each shows."""

    MOUSE_ACTIONS = (
        ("frame views", "wheel: zoom every view; drag: pan every view"),
        ("frame views", "hover: read the value under the cursor in every view"),
        ("frame views", "right-click: reset zoom, copy image, export this view, copy the value, colour map"),
        ("main prediction", "drag the rectangle: the region to explain (Why menu)"),
    )

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.graphics = pg.GraphicsLayoutWidget()
        # The frame number and whether it is context or predicted: a plain label of fixed height,
        # outside the graphics layout, so that its text changing on every step lays nothing out.
        self.header = steady_label()
        self.header.setFixedHeight(22)
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.header.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.readout = QLabel("move the cursor over a frame to read its values")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.readout)
        self.views: dict[str, pg.ViewBox] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.titles: dict[str, pg.LabelItem] = {}
        self.markers: dict[str, pg.TextItem] = {}  # "not computed yet" inside an empty view
        self._shown: dict[str, object] = {}  # what each title / border shows now (set only on change)
        self.bars: list[pg.PlotItem] = []  # the colour bars (intensity, difference)
        self._column_width = 200  # pixels of one view column (set by _equal_columns)
        self.borders: dict[str, QGraphicsRectItem] = {}
        self.absent: dict[str, pg.TextItem] = {}  # "not observed yet" over GT / difference views
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        session.events.sequence.connect(lambda: self.rebuild())
        session.events.models.connect(lambda slot: self.rebuild())
        session.events.frame.connect(lambda frame: self.show_frame())
        session.events.step.connect(self._on_step)
        session.events.region.connect(self.show_region)
        session.events.display.connect(lambda _view: self._on_display())
        session.events.zoom.connect(self.apply_zoom)
        self.graphics.scene().sigMouseClicked.connect(self._on_right_click)
        self.region: pg.RectROI | None = None  # the attribution region on the main prediction
        self.brush_overlay: pg.ImageItem | None = None  # the painted attribution region
        self.brush_mode = False  # a drag on the main prediction paints the region
        self.brush_radius: Callable[[], float] = lambda: 3.0
        self._stroke: list[tuple[float, float]] = []
        self.graphics.viewport().installEventFilter(self)
        self.rebuild()

    # -- layout ---------------------------------------------------------------------------
    def columns(self) -> list[tuple[str, str]]:
        """(view key, title) of every view the session has something for, in reading order."""
        columns = [("gt", "Ground truth")]
        for index, slot in self.session.models:
            against = "GT" if slot.reference is None else slot.reference_name
            columns += [(f"pred{index}", slot.name), (f"diff{index}", f"{slot.name} − {against}")]
        return columns

    def place(self, name: str) -> tuple[int, int]:
        """(row, column) of a view: GT first, then one row per model (prediction, difference)."""
        if name == "gt":
            return 0, 0
        rows = [index for index, _ in self.session.models]
        return rows.index(int(name[-1])), 1 if name.startswith("pred") else 2

    def rebuild(self) -> None:
        self.graphics.clear()
        self.views, self.images, self.titles, self.borders, self.absent = {}, {}, {}, {}, {}
        self.markers = {}
        self._shown = {}
        self.bars = []
        if self.session.frames is None:
            self.header.setText("")
            self.graphics.addLabel(
                "Open a sequence and a checkpoint (File menu, or drop the files here)", 0, 0
            )
            return
        height, width = self.session.frames.shape[2:]
        notes = "; ".join(self.session.notes)
        self.readout.setText(
            f"frames: {notes}" if notes else "move the cursor over a frame to read its values"
        )
        columns = self.columns()
        rows = 1 + max(self.place(name)[0] for name, _ in columns)
        for name, _title in columns:
            row, col = self.place(name)
            # Titles never change while scrubbing (a new text would lay the whole grid out again);
            # "not computed yet" is written inside the empty view instead.
            self.titles[name] = self.graphics.addLabel("", row=2 * row + 1, col=col, size="9pt")
            view = self.graphics.addViewBox(
                row=2 * row + 2, col=col, lockAspect=True, invertY=True, enableMenu=False
            )
            image = DisplayImage()
            view.addItem(image)
            marker = pg.TextItem("", anchor=(0.5, 0.5))
            marker.setPos(width / 2, height / 2)
            marker.setVisible(False)  # shown with a text only: a TextItem runs Python on every repaint
            view.addItem(marker, ignoreBounds=True)
            self.markers[name] = marker
            if not name.startswith("pred"):  # GT and differences have nothing past the data's end
                text = "not observed yet" if name == "gt" else "no truth to compare yet"
                absent = pg.TextItem(text, color="#6b7280", anchor=(0.5, 0.5))
                absent.setPos(width / 2, height / 2)
                absent.setVisible(False)
                view.addItem(absent)
                self.absent[name] = absent
            if name != "gt":
                border = QGraphicsRectItem(QRectF(-0.5, -0.5, width + 1, height + 1))
                view.addItem(border)
                self.borders[name] = border
            # Linked by hand: pyqtgraph's X+Y links between aspect-locked views of slightly
            # different sizes feed back and zoom out without end.
            view.sigRangeChangedManually.connect(lambda _mask, source=view: self._sync_from(source))
            self.views[name], self.images[name] = view, image
        grid = self.graphics.ci.layout
        self._equal_columns()
        for row in range(rows):
            grid.setRowStretchFactor(2 * row + 2, 10)
        renderer = self.session.renderer
        self.bars.append(colour_bar(renderer.frame_bar(), renderer.lut))
        self.graphics.addItem(self.bars[-1], row=2, col=3, rowspan=2 * rows - 1)
        if len(columns) > 1:
            self.bars.append(colour_bar(renderer.difference_bar(), DIVERGING))
            self.graphics.addItem(self.bars[-1], row=2, col=4, rowspan=2 * rows - 1)
        self._fit_titles()
        cache_labels(self.graphics.ci)
        no_paint_calls(self.graphics.ci)
        self.apply_zoom()
        self.region = self.brush_overlay = None
        self.show_region()
        self.set_brush_mode(self.brush_mode)
        self.show_frame()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._equal_columns()

    def _equal_columns(self) -> None:
        """Give the three view columns the same width, so that linked views share one scale."""
        if not self.views:
            return
        bars = 2 * (BAR_WIDTH + 10)
        width = max(60, (self.graphics.width() - bars - 30) // 3)
        self._column_width = width
        for col in range(3):
            self.graphics.ci.layout.setColumnFixedWidth(col, width)
        self._fit_titles()  # titles are elided to the new width

    def _sync_from(self, source: pg.ViewBox) -> None:
        """The user zoomed or panned one view: show the same region in every other view."""
        region = source.viewRect()
        for view in self.views.values():
            if view is not source:
                view.setRange(region, padding=0)
        self.session.zoom = (region.x(), region.y(), region.width(), region.height())

    def apply_zoom(self) -> None:
        """Show the session's zoom (a view state opened) in every view."""
        zoom = self.session.zoom
        if zoom is None:
            self.reset_zoom()
            return
        for view in self.views.values():
            view.setRange(QRectF(*zoom), padding=0)

    # -- content ---------------------------------------------------------------------------
    def show_frame(self) -> None:
        """Swap in the already-rendered images of the current frame and mark it."""
        session = self.session
        if session.frames is None:
            return
        frame = session.frame
        images = session.images_at(frame)
        context = session.is_context(frame)
        colour = CONTEXT_COLOUR if context else PREDICTED_COLOUR
        for name, item in self.images.items():
            rgb = images.get(name)
            if rgb is None:
                item.clear()
            else:
                item.setImage(rgb)  # drawn once by the view model: a pixmap swap
        observed = session.is_observed(frame)
        if self._shown.get("observed") != observed:
            self._shown["observed"] = observed
            for absent in self.absent.values():
                absent.setVisible(not observed)
        self.header.setText(session.frame_status(frame))  # plain text: no layout per step
        if self._shown.get("header") != colour:
            self._shown["header"] = colour
            palette = self.header.palette()
            palette.setColor(QPalette.ColorRole.WindowText, QColor(colour))
            self.header.setPalette(palette)
        # Titles never change while scrubbing; what a view lacks is written inside it.
        for name, marker in self.markers.items():
            text = ""
            if name != "gt" and images.get(name) is None and (observed or name.startswith("pred")):
                text = "no prediction of frame 0" if frame == 0 else "not computed yet"
            if self._shown.get(name) != text:
                self._shown[name] = text
                marker.setText(text, color=colour)
                marker.setVisible(bool(text))
        if self._shown.get("border") != colour:
            self._shown["border"] = colour
            pen = QPen(QColor(colour))
            pen.setWidth(4)
            pen.setCosmetic(True)
            for border in self.borders.values():
                border.setPen(pen)

    def _fit_titles(self) -> None:
        """Titles, elided to the column width (never pushing the colour bars out), with a note of
        a view's own colour map and levels (the colour bars show the default drawing). They
        change only here, on a new layout or display, never while scrubbing."""
        for name, title in self.columns():
            label = self.titles.get(name)
            if label is None:
                continue
            _set_fitted(label, _shorten(title), self._column_width, None, "9pt")
            note = self.session.display_note(name)
            if note:
                label.setText(f"{label.text}<br><small>{note}</small>", size="9pt")

    def _on_display(self) -> None:
        self._fit_titles()
        self.show_frame()

    def _on_step(self, slot: int, t: int) -> None:
        session = self.session
        # the frame's own prediction arrived, or levels that follow the data may have moved
        data_levels = any(session.display(v).levels in ("auto", "percentile") for v in self.images)
        if t == session.frame - 1 or data_levels:
            self.show_frame()

    def reset_zoom(self) -> None:
        self.session.zoom = None
        if self.session.frames is not None:
            height, width = self.session.frames.shape[2:]
            for view in self.views.values():
                view.setRange(QRectF(0, 0, width, height), padding=0.02)

    # -- attribution region -------------------------------------------------------------------
    def show_region(self) -> None:
        """The session's attribution region on the main prediction view: a draggable rectangle,
        and the painted pixels in translucent yellow."""
        self._show_brush()
        region = self.session.attribution.region
        view = self.views.get("pred0")
        if region is None or view is None:
            if self.region is not None and self.region.scene() is not None:
                self.region.scene().removeItem(self.region)
            self.region = None
            return
        x0, y0, x1, y1 = region
        if self.region is None:
            pen = pg.mkPen("#facc15", width=2)
            self.region = pg.RectROI((x0, y0), (x1 - x0, y1 - y0), pen=pen, snapSize=1)
            self.region.translateSnap = self.region.scaleSnap = True
            self.region.sigRegionChangeFinished.connect(self._on_region_moved)
            view.addItem(self.region)
        else:
            self.region.setPos((x0, y0), finish=False)
            self.region.setSize((x1 - x0, y1 - y0), finish=False)

    def _show_brush(self) -> None:
        brush = self.session.attribution.brush
        view = self.views.get("pred0")
        if view is None:
            return
        if self.brush_overlay is None:
            self.brush_overlay = pg.ImageItem()
            self.brush_overlay.setZValue(10)
            view.addItem(self.brush_overlay)
        if brush is None:
            self.brush_overlay.clear()
            return
        rgba = np.zeros((*brush.shape, 4), np.uint8)
        rgba[brush] = (250, 204, 21, 150)
        self.brush_overlay.setImage(rgba, autoLevels=False, levels=(0, 255))

    def set_brush_mode(self, on: bool) -> None:
        """While on, a drag on the main prediction paints the attribution region (no panning there)."""
        self.brush_mode = on
        view = self.views.get("pred0")
        if view is not None:
            view.setMouseEnabled(not on, not on)

    def eventFilter(self, obj, event) -> bool:
        """Brush strokes on the main prediction: press starts, move extends, release commits."""
        from PySide6.QtCore import QEvent

        view = self.views.get("pred0")
        kind = event.type()
        if (
            not self.brush_mode
            or view is None
            or kind
            not in (
                QEvent.Type.MouseButtonPress,
                QEvent.Type.MouseMove,
                QEvent.Type.MouseButtonRelease,
            )
        ):
            return False
        scene = self.graphics.mapToScene(event.position().toPoint())
        point = view.mapSceneToView(scene)
        pixel = (float(point.x()), float(point.y()))
        if kind == QEvent.Type.MouseButtonPress:
            if not view.sceneBoundingRect().contains(scene):
                return False
            self._stroke = [pixel]
        elif kind == QEvent.Type.MouseMove and self._stroke:
            self._stroke.append(pixel)
        elif kind == QEvent.Type.MouseButtonRelease and self._stroke:
            points, self._stroke = [*self._stroke, pixel], []
            self.session.paint_region(points, self.brush_radius())
        else:
            return False
        return True

    def _on_region_moved(self, roi: pg.RectROI) -> None:
        height, width = self.session.frames.shape[2:]
        x, y = roi.pos()
        w, h = roi.size()
        x0, y0 = int(np.clip(round(x), 0, width - 1)), int(np.clip(round(y), 0, height - 1))
        x1, y1 = int(np.clip(round(x + w), x0 + 1, width)), int(np.clip(round(y + h), y0 + 1, height))
        self.session.set_region((x0, y0, x1, y1))

    # -- readout -----------------------------------------------------------------------------
    def _on_mouse_moved(self, pos: QPointF) -> None:
        for name, view in self.views.items():
            if view.sceneBoundingRect().contains(pos):
                point = view.mapSceneToView(pos)
                self.read_value(name, int(np.floor(point.y())), int(np.floor(point.x())))
                return

    # -- context menu --------------------------------------------------------------------------
    def view_at(self, scene_pos: QPointF) -> str | None:
        for name, view in self.views.items():
            if view.sceneBoundingRect().contains(scene_pos):
                return name
        return None

    def _on_right_click(self, event) -> None:
        if event.button() != Qt.MouseButton.RightButton:
            return
        name = self.view_at(event.scenePos())
        if name is not None:
            event.accept()
            self.context_menu(name, event.scenePos()).popup(QCursor.pos())

    def context_menu(self, name: str, scene_pos: QPointF) -> QMenu:
        """Right-click menu of one view: reset zoom, copy image, export this view, copy the value
        under the cursor, and its colour map."""
        point = self.views[name].mapSceneToView(scene_pos)
        y, x = int(np.floor(point.y())), int(np.floor(point.x()))
        menu = QMenu(self)
        menu.addAction("Reset zoom", self.reset_zoom)
        menu.addAction("Copy image", lambda: self.copy_image(name))
        menu.addAction("Export this view…", lambda: self.ask_export_view(name))
        menu.addAction("Copy the value under the cursor", lambda: self.copy_value(name, y, x))
        maps = menu.addMenu("Colour map")
        current = self.session.display(name).colour_map
        for colour_map in self.session.colour_maps(name):
            action = maps.addAction(
                colour_map, lambda m=colour_map: self.session.set_display(name, colour_map=m)
            )
            action.setCheckable(True)
            action.setChecked(colour_map == current)
        levels = menu.addMenu("Levels")
        for mode, label in LEVEL_MODES.items():
            action = levels.addAction(label, lambda m=mode: self.session.set_display(name, levels=m))
            action.setCheckable(True)
            action.setChecked(mode == self.session.display(name).levels)
        return menu

    def copy_image(self, name: str) -> None:
        """The view's image (as drawn, at the data's resolution) to the clipboard."""
        image = self.images[name].image
        if image is not None:
            QApplication.clipboard().setImage(native_qimage(image))

    def ask_export_view(self, name: str) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export this view", f"{name}-frame{self.session.frame}.png", "PNG (*.png)"
        )
        if path:
            self.export_view(name, path)

    def export_view(self, name: str, path: str) -> None:
        """Write the view's image (as drawn) as a PNG."""
        from mimviewer.export import write_png

        image = self.images[name].image
        if image is None:
            self.readout.setText(f"{name}: nothing to export at this frame")
            return
        write_png(path, image[..., :3])
        self.readout.setText(f"wrote {path}")

    def copy_value(self, name: str, y: int, x: int) -> str:
        """The value under the cursor (as the readout says it) to the clipboard."""
        value = self.session.value_at(name, self.session.frame, y, x)
        text = "" if value is None else f"{value:.6g}"
        QApplication.clipboard().setText(text)
        return text

    def read_value(self, name: str, y: int, x: int) -> str:
        """Show (and return) the physical value of view ``name`` at pixel (y, x)."""
        session = self.session
        values = []
        for view in self.views:
            value = session.value_at(view, session.frame, y, x)
            if value is not None:
                marker = "▶" if view == name else ""
                values.append(f"{marker}{view} {value:.4g}")
        text = (
            f"frame {session.frame}, x={x}, y={y} [{session.units}]: " + ", ".join(values) if values else ""
        )
        self.readout.setText(text or "outside the frame")
        return text
