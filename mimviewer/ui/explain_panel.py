"""Why and what-if: the attribution tab and the what-if editing tab (Qt only; state in the session).

Attribution: pick a predicted frame on the timeline, choose the whole frame, a rectangle
(drag it on the prediction view) or a brush (paint on the prediction view), press Explain. The job runs in a
worker thread with progress and Cancel; the result shows the context frames with the
attribution over them (own slider, colour bar), the total per context frame (bars) and the
share of the gradient through each memory path at each step.

What-if: choose a context frame and a tool, then drag on it (erase / paint), click a blob
(move it by dx, dy) or press Apply (shift / scale / copy). Undo and Redo walk the edit list;
Run what-if rolls the main model out from the edited frames into an extra row of the frame
views, with its internals and metric curves beside the original's.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import GeneratorWorker

from mimviewer.attribution_choices import BASELINES, DEFAULT_IG_STEPS, METHODS
from mimviewer.errors import MimviewerError
from mimviewer.ui.frame_views import colour_bar
from mimviewer.viewmodel import Session
from mimviewer.viewmodel.attribution import AttributionView, attribution_job
from mimviewer.whatif import CopyFrame, EditList, Erase, MoveBlob, Paint, Scale, Shift

REGION_KINDS = {"frame": "whole frame", "rectangle": "rectangle", "brush": "brush"}
TOOLS = {
    "erase": "erase (drag a brush)",
    "paint": "paint (drag a brush)",
    "move_blob": "move blob (click it)",
    "shift": "shift the frame",
    "scale": "scale the frame",
    "copy": "copy another frame",
}


class AttributionRunner(QObject):
    """Runs one attribution job at a time in a worker thread; a new one cancels the old."""

    progress = Signal(int, int, str)
    done = Signal(object)  # the AttributionView, or None when cancelled
    failed = Signal(object)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._worker: GeneratorWorker | None = None

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, frame: int | None = None) -> None:
        self.cancel()
        request = self.session.attribution.request(self.session, frame)  # errors reach the caller
        worker = GeneratorWorker(attribution_job, self.session, request)
        worker.yielded.connect(lambda p: self._on_progress(worker, p))
        worker.returned.connect(lambda view: self._on_returned(worker, view))
        worker.errored.connect(lambda exc: self._on_failed(worker, exc))
        self._worker = worker
        self.progress.emit(0, 1, f"explaining frame {request.frame}…")
        worker.start()

    def cancel(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.quit()
            self.progress.emit(0, 0, "attribution cancelled")
            self.done.emit(None)

    def _on_progress(self, worker: GeneratorWorker, progress) -> None:
        if worker is self._worker:
            self.progress.emit(progress.done, progress.total, progress.text)

    def _on_returned(self, worker: GeneratorWorker, view: AttributionView) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        self.session.accept_attribution(view)
        result = view.result
        gap = result.completeness_gap
        text = result.describe() + ("" if gap is None else f"; completeness gap {gap:.3g}")
        self.progress.emit(1, 1, text)
        self.done.emit(view)

    def _on_failed(self, worker: GeneratorWorker, exc: Exception) -> None:
        if worker is self._worker:
            self._worker = None
            self.progress.emit(0, 0, "attribution failed")
            self.failed.emit(exc)


class AttributionTab(QWidget):
    """Settings, Explain / Cancel, and the result: overlay (scrubbable), per-frame bars, memory paths."""

    failed = Signal(str)
    brush_mode_changed = Signal(bool)  # the frame views paint the region while True

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = AttributionRunner(session, self)
        self.method = QComboBox()
        self.method.setToolTip("Attribution method: how each context pixel's share is measured")
        for key, text in METHODS.items():
            self.method.addItem(key, key)
            self.method.setItemData(self.method.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentText(session.attribution.method)
        self.baseline = QComboBox()
        self.baseline.setToolTip("Integrated gradients: the context it starts from")
        for key, text in BASELINES.items():
            self.baseline.addItem(key, key)
            self.baseline.setItemData(self.baseline.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.steps = QSpinBox(minimum=1, maximum=512, value=DEFAULT_IG_STEPS, suffix=" steps")
        self.steps.setToolTip("Integrated gradients: gradient evaluations along the path")
        self.region_kind = QComboBox()
        for key, text in REGION_KINDS.items():
            self.region_kind.addItem(text, key)
        self.region_kind.setToolTip(
            "What to explain in the current predicted frame: all of it, the rectangle you drag on "
            "the prediction view, or the pixels you paint there with the brush"
        )
        self.brush_radius = QDoubleSpinBox(minimum=0.5, maximum=64, value=3, singleStep=0.5, suffix=" px")
        self.brush_radius.setToolTip("Brush radius for painting the region")
        self.clear_brush = QPushButton("Clear")
        self.clear_brush.setToolTip("Forget the painted region")
        self.explain_button = QPushButton("Explain")
        self.explain_button.setToolTip("Attribute the current predicted frame (or its region) to the context")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running attribution")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("pick a predicted frame, then Explain")
        self.status.setWordWrap(True)
        controls = QHBoxLayout()
        for widget in (
            self.method,
            self.baseline,
            self.steps,
            self.region_kind,
            self.brush_radius,
            self.clear_brush,
            self.explain_button,
            self.cancel_button,
        ):
            controls.addWidget(widget)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.colour = None
        self.totals = self.graphics.addPlot(row=2, col=0, colspan=2)
        self.totals.setMaximumHeight(140)
        self.totals.setLabel("bottom", "context frame")
        self.totals.setLabel("left", "total")
        self.totals.setMouseEnabled(False, False)
        self.memory = self.graphics.addPlot(row=3, col=0, colspan=2)
        self.memory.setMaximumHeight(180)
        self.memory.setLabel("bottom", "step")
        self.memory.invertY(True)
        self.memory.setMouseEnabled(False, False)
        self.memory_image = pg.ImageItem()
        self.memory.addItem(self.memory_image)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Context frame shown with its attribution")
        self.slider_label = QLabel()
        scrub = QHBoxLayout()
        scrub.addWidget(QLabel("context frame"))
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.slider_label)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        row = QHBoxLayout()
        row.addWidget(self.progress)
        row.addWidget(self.status, 1)
        layout.addLayout(row)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(scrub)

        self.method.currentTextChanged.connect(self._on_settings)
        self.baseline.currentTextChanged.connect(self._on_settings)
        self.steps.valueChanged.connect(self._on_settings)
        self.region_kind.currentIndexChanged.connect(self._on_region_kind)
        self.clear_brush.clicked.connect(session.clear_brush)
        session.events.sequence.connect(lambda: self.region_kind.setCurrentIndex(0))
        self.explain_button.clicked.connect(lambda: self.explain())
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.slider.valueChanged.connect(self._on_slider)
        self.runner.progress.connect(self._on_progress)
        self.runner.failed.connect(lambda exc: self.failed.emit(str(exc)))
        session.events.attribution.connect(self.show_result)
        self._on_settings()
        self._on_region_kind()
        self.show_result()

    # -- intent ------------------------------------------------------------------------------
    def _on_settings(self, *_args) -> None:
        self.session.attribution.set_method(
            self.method.currentText(), self.baseline.currentText(), self.steps.value()
        )
        integrated = self.method.currentText() == "ig"
        self.baseline.setEnabled(integrated)
        self.steps.setEnabled(integrated)

    @property
    def brushing(self) -> bool:
        """Whether a drag on the prediction view paints the region."""
        return self.region_kind.currentData() == "brush"

    def _on_region_kind(self, *_args) -> None:
        kind = self.region_kind.currentData()
        self.brush_radius.setVisible(kind == "brush")
        self.clear_brush.setVisible(kind == "brush")
        frames = self.session.frames
        if kind != "brush":
            self.session.clear_brush()
        if kind != "rectangle" or frames is None:
            self.session.set_region(None)
        else:
            height, width = frames.shape[2:]
            self.session.set_region((width // 4, height // 4, 3 * width // 4, 3 * height // 4))
        self.brush_mode_changed.emit(kind == "brush")

    def explain(self, frame: int | None = None) -> bool:
        """Start the attribution of ``frame`` (default: the current frame); False if it cannot."""
        try:
            self.runner.start(frame)
        except MimviewerError as exc:
            self.failed.emit(str(exc))
            return False
        return True

    def _on_progress(self, done: int, total: int, text: str) -> None:
        running = self.runner.is_running
        self.cancel_button.setEnabled(running)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(text)

    def _on_slider(self, value: int) -> None:
        self.session.attribution.context_frame = value
        self.show_frame()

    # -- drawing -----------------------------------------------------------------------------
    def show_result(self) -> None:
        view = self.session.attribution.view
        self.totals.clear()
        self.memory_image.clear()
        if self.colour is not None:
            self.graphics.removeItem(self.colour)
            self.colour = None
        if view is None:
            self.image.clear()
            self.title.setText("no attribution yet")
            self.slider.setEnabled(False)
            return
        pre = len(view.overlays)
        self.slider.blockSignals(True)
        self.slider.setRange(0, pre - 1)
        self.slider.setValue(self.session.attribution.context_frame)
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        self.colour = colour_bar(view.scale.colour_bar(), view.scale.colours)
        self.graphics.addItem(self.colour, row=1, col=1)
        totals = view.frame_totals
        brushes = [pg.mkBrush("#b2182b" if v >= 0 else "#2166ac") for v in totals]
        self.bars = pg.BarGraphItem(x=np.arange(pre), height=totals, width=0.7, brushes=brushes)
        self.totals.addItem(self.bars)
        self.totals.setXRange(-0.6, pre - 0.4, padding=0)
        self.cursor = pg.InfiniteLine(
            self.session.attribution.context_frame, pen=pg.mkPen("#ea580c", width=2)
        )
        self.totals.addItem(self.cursor)
        if view.memory_shares.size:
            self.memory_image.setImage(view.memory_image, autoLevels=False, levels=(0, 255))
            axis = self.memory.getAxis("left")
            axis.setTicks([[(r + 0.5, label) for r, label in enumerate(view.memory_labels)]])
            top = view.memory_scale.vmax
            self.memory.setTitle(
                f"memory path x step: share of the gradient, 0 to {top:.2f} (grey: not computed)", size="9pt"
            )
        self.show_frame()

    def show_frame(self) -> None:
        view = self.session.attribution.view
        if view is None:
            return
        t = min(self.session.attribution.context_frame, len(view.overlays) - 1)
        self.image.setImage(view.overlays[t], autoLevels=False, levels=(0, 255))
        self.title.setText(f"context frame {t} with the attribution: total {view.frame_totals[t]:.3g}")
        self.slider_label.setText(f"{t}/{len(view.overlays) - 1}")
        if hasattr(self, "cursor"):
            self.cursor.setValue(t)


class WhatIfTab(QWidget):
    """Edit a context frame with a tool, keep the edits as an undoable list, re-run the model."""

    run_requested = Signal()
    failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.frame = QSpinBox(minimum=0, maximum=0, prefix="context frame ")
        self.frame.setToolTip("The context frame the edit applies to")
        self.tool = QComboBox()
        self.tool.setToolTip("What the edit does to the context frame")
        for key, text in TOOLS.items():
            self.tool.addItem(text, key)
        self.radius = QDoubleSpinBox(minimum=0.5, maximum=64, value=4, singleStep=0.5, suffix=" px")
        self.radius.setToolTip("Brush radius of erase / paint")
        self.value = QDoubleSpinBox(minimum=0, maximum=1, value=1, singleStep=0.05)
        self.value.setToolTip("Paint value in the model scale [0, 1]")
        self.dx = QSpinBox(minimum=-512, maximum=512, value=4, prefix="dx ")
        self.dx.setToolTip("Shift / move right by this many pixels")
        self.dy = QSpinBox(minimum=-512, maximum=512, value=0, prefix="dy ")
        self.dy.setToolTip("Shift / move down by this many pixels")
        self.intensity = QDoubleSpinBox(minimum=0, maximum=10, value=1.5, singleStep=0.1, prefix="x ")
        self.intensity.setToolTip("Scale: multiply the frame's values by this")
        self.zoom = QDoubleSpinBox(minimum=0.1, maximum=10, value=1.0, singleStep=0.1, prefix="zoom ")
        self.zoom.setToolTip("Scale: enlarge (or shrink) the frame about its centre")
        self.source = QSpinBox(minimum=0, maximum=0, prefix="from frame ")
        self.source.setToolTip("Copy: the frame whose content replaces this one")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Add this edit to the list")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Take back the last edit (Ctrl+Z)")
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Apply the undone edit again (Ctrl+Shift+Z)")
        self.run_button = QPushButton("Run what-if")
        self.run_button.setToolTip("Predict from the edited context: an extra row in the frame views")
        self.save_button = QPushButton("Save edits…")
        self.save_button.setToolTip("Write the edit list to a JSON file")
        self.open_button = QPushButton("Open edits…")
        self.open_button.setToolTip("Read an edit list from a JSON file")
        form = QFormLayout()
        form.addRow(self.frame, self.tool)
        params = QHBoxLayout()
        for widget in (self.radius, self.value, self.dx, self.dy, self.intensity, self.zoom, self.source):
            params.addWidget(widget)
        form.addRow(params)
        buttons = QHBoxLayout()
        for widget in (self.apply_button, self.undo_button, self.redo_button, self.run_button):
            buttons.addWidget(widget)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.open_button)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(False, False)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(QLabel("edits (applied in order):"))
        layout.addWidget(self.list)
        layout.addLayout(files)
        self._stroke: list[tuple[float, float]] = []

        self.frame.valueChanged.connect(session.set_edit_frame)
        self.tool.currentIndexChanged.connect(self._on_tool)
        self.apply_button.clicked.connect(self.apply_frame_tool)
        self.undo_button.clicked.connect(session.undo_edit)
        self.redo_button.clicked.connect(session.redo_edit)
        self.run_button.clicked.connect(self.run_requested.emit)
        self.save_button.clicked.connect(self.ask_save)
        self.open_button.clicked.connect(self.ask_open)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self.graphics.viewport().installEventFilter(self)
        session.events.edits.connect(self.refresh)
        session.events.sequence.connect(self.refresh)
        session.events.models.connect(lambda _slot: self.refresh())
        self._on_tool()
        self.refresh()

    # -- tools ---------------------------------------------------------------------------------
    @property
    def tool_name(self) -> str:
        return str(self.tool.currentData())

    def _on_tool(self, *_args) -> None:
        tool = self.tool_name
        visible = {
            self.radius: tool in ("erase", "paint"),
            self.value: tool == "paint",
            self.dx: tool in ("move_blob", "shift"),
            self.dy: tool in ("move_blob", "shift"),
            self.intensity: tool == "scale",
            self.zoom: tool == "scale",
            self.source: tool == "copy",
        }
        for widget, show in visible.items():
            widget.setVisible(show)
        self.apply_button.setEnabled(tool in ("shift", "scale", "copy"))

    def add(self, edit) -> bool:
        """Push one edit through the session (it checks it); False with a message if it does not fit."""
        try:
            self.session.push_edit(edit)
        except MimviewerError as exc:
            self.failed.emit(str(exc))
            return False
        return True

    def apply_frame_tool(self) -> None:
        frame, tool = self.session.whatif.frame, self.tool_name
        if tool == "shift":
            self.add(Shift(frame, self.dx.value(), self.dy.value()))
        elif tool == "scale":
            self.add(Scale(frame, self.intensity.value(), self.zoom.value()))
        elif tool == "copy":
            self.add(CopyFrame(frame, self.source.value()))

    def stroke(self, points: list[tuple[float, float]]) -> bool:
        """A finished brush stroke (pixel coordinates) with the erase or paint tool."""
        frame, radius = self.session.whatif.frame, self.radius.value()
        if self.tool_name == "paint":
            return self.add(Paint(frame, tuple(points), radius, self.value.value()))
        return self.add(Erase(frame, tuple(points), radius))

    def _pixel(self, scene_pos: QPointF) -> tuple[float, float]:
        point = self.view.mapSceneToView(scene_pos)
        return float(point.x()), float(point.y())

    def _on_click(self, event) -> None:
        if self.tool_name == "move_blob" and self.session.frames is not None:
            x, y = self._pixel(event.scenePos())
            self.add(MoveBlob(self.session.whatif.frame, int(x), int(y), self.dx.value(), self.dy.value()))

    def eventFilter(self, obj, event) -> bool:
        """Brush strokes: press starts, move extends, release commits (erase / paint tools)."""
        from PySide6.QtCore import QEvent

        if self.tool_name not in ("erase", "paint") or self.session.frames is None:
            return False
        kind = event.type()
        if kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            scene = self.graphics.mapToScene(event.position().toPoint())
            if kind == QEvent.Type.MouseButtonPress:
                self._stroke = [self._pixel(scene)]
            elif kind == QEvent.Type.MouseMove and self._stroke:
                self._stroke.append(self._pixel(scene))
            elif kind == QEvent.Type.MouseButtonRelease and self._stroke:
                end = self._pixel(scene)
                points, self._stroke = self._stroke + ([end] if end != self._stroke[-1] else []), []
                self.stroke(points)
            return True
        return False

    # -- files -----------------------------------------------------------------------------------
    def ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save edits", "edits.json", "Edits (*.json)")
        if path:
            try:
                self.session.whatif.edits.save(path)
            except MimviewerError as exc:
                self.failed.emit(str(exc))

    def ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open edits", "", "Edits (*.json)")
        if path:
            try:
                self.session.set_edits(EditList.load(path))
            except MimviewerError as exc:
                self.failed.emit(str(exc))

    # -- drawing -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        session = self.session
        pre = max(session.pre, 1)
        for spin in (self.frame, self.source):
            spin.blockSignals(True)
            spin.setMaximum(pre - 1)
            spin.blockSignals(False)
        self.frame.blockSignals(True)
        self.frame.setValue(session.whatif.frame)
        self.frame.blockSignals(False)
        self.list.clear()
        for index, edit in enumerate(session.whatif.edits):
            self.list.addItem(f"{index + 1}. {edit.describe()}")
        self.undo_button.setEnabled(len(session.whatif.edits) > 0)
        has_model = session.frames is not None and session.slots[0] is not None
        self.run_button.setEnabled(has_model)
        image = session.edited_image() if session.frames is not None else None
        if image is None:
            self.image.clear()
        else:
            self.image.setImage(image, autoLevels=False, levels=(0, 255))
            height, width = image.shape[:2]
            self.view.setRange(QRectF(0, 0, width, height), padding=0.02)


class ExplainPanel(QTabWidget):
    """The two tabs, side by side with the internals."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attribution = AttributionTab(session)
        self.whatif = WhatIfTab(session)
        self.addTab(self.attribution, "Attribution")
        self.addTab(self.whatif, "What-if")
