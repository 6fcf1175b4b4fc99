"""One timeline for everything: slider, play/pause, fps, loop, context / horizon / "now", and
per-frame metric curves (with the live feed's running verification over the forecast frames)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mimviewer.ui import (
    CONTEXT_COLOUR,
    PREDICTED_COLOUR,
    Cursor,
    cache_curve,
    cache_static_parts,
    legend_label,
    no_paint_calls,
    set_legend,
    steady_label,
)
from mimviewer.viewmodel import Session

MODEL_PENS = ("#dc2626", "#7c3aed", "#059669", "#d97706")  # slot 0, slot 1, what-if, delta rollouts


class Timeline(QWidget):
    """Drives ``session.frame``; plays with a QTimer; clicking a metric curve jumps there."""

    MOUSE_ACTIONS = (
        ("timeline", "drag the slider: scrub; click a metric curve: jump to that frame"),
        ("frame box", "type a frame number (or a time where the data has times) and press Enter"),
    )

    forecast_changed = Signal(int, int, int)  # context, horizon, now (sequence index)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.play_button = QToolButton(text="▶")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.setCheckable(True)
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.toggled.connect(self.set_playing)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimumWidth(160)
        self.slider.setToolTip("Frame (Left/Right step, Home/End jump)")
        self.slider.valueChanged.connect(self._on_slider)
        self.frame_box = QLineEdit()
        self.frame_box.setFixedWidth(110)
        self.frame_box.setToolTip(
            "Frame: type a number (or a time such as 90 s, 1:30 or 2 min where the data has times) "
            "and press Enter"
        )
        self.frame_box.returnPressed.connect(self._on_frame_typed)
        self.frame_label = steady_label()
        self.frame_label.setFixedWidth(260)  # fixed: its text changes every step, no layout pass
        bold = self.frame_label.font()
        bold.setBold(True)
        self.frame_label.setFont(bold)
        self._label_colour = ""
        self.fps = QSpinBox(minimum=1, maximum=60, value=4, suffix=" fps")
        self.fps.setToolTip("Playback speed")
        self.fps.valueChanged.connect(lambda v: self.timer.setInterval(int(1000 / v)))
        self.context_spin = QSpinBox(minimum=1, maximum=999, prefix="context ")
        self.context_spin.setToolTip("Frames the model reads before predicting")
        self.horizon_spin = QSpinBox(minimum=1, maximum=999, prefix="horizon ")
        self.horizon_spin.setToolTip(
            "Frames predicted; past the horizon the model was trained for it runs on autoregressively"
        )
        self.now_spin = QSpinBox(minimum=0, maximum=0, prefix="now = frame ")
        self.now_spin.setToolTip("The last frame the model reads: the forecast starts after it")
        for spin in (self.context_spin, self.horizon_spin, self.now_spin):
            spin.setKeyboardTracking(False)  # one rerun per typed number, not per digit
            spin.valueChanged.connect(self._on_forecast_spin)
        self.loop = QCheckBox("loop")
        self.loop.setToolTip("Start again at the first frame after the last one")
        self.loop.setChecked(True)
        self.loop.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.metric = QComboBox()
        self.metric.setToolTip("Per-frame score shown below (lower MSE / higher SSIM, CSI is better)")
        self.metric.currentTextChanged.connect(lambda _: self.refresh_curves())
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.advance)
        self.clock = QElapsedTimer()  # playback skips frames when drawing cannot keep up
        self.dropped_frames = 0  # frames skipped by playback since it started (benchmarks read it)

        # two rows, so that the timeline never forces the window wider than a laptop screen
        controls = QHBoxLayout()
        for widget in (self.play_button, self.slider, QLabel("frame"), self.frame_box, self.frame_label):
            controls.addWidget(widget, 1 if widget is self.slider else 0)
        settings = QHBoxLayout()
        for widget in (self.fps, self.loop, self.context_spin, self.horizon_spin, self.now_spin):
            settings.addWidget(widget)
        settings.addStretch(1)
        settings.addWidget(QLabel("metric"))
        settings.addWidget(self.metric)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(120)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "frame")
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # scores as they are, not "x0.001"
        self.legend = legend_label()
        self.context_region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(37, 99, 235, 30))
        self.context_region.setZValue(-10)
        self.context_region.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.addItem(self.context_region)
        self.future_region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(120, 120, 120, 40))
        self.future_region.setZValue(-10)  # grey: frames not observed yet (forecast past the end)
        self.future_region.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.addItem(self.future_region)
        self.verification_curves: list[pg.PlotDataItem] = []
        self.cursor = Cursor(self.plot.plotItem, "k", width=2)
        self.theme_cursors = (self.cursor,)
        self.plot.scene().sigMouseClicked.connect(self._on_plot_clicked)
        cache_static_parts(self.plot.plotItem)
        no_paint_calls(self.plot.plotItem)
        self.curves: dict[int, pg.PlotDataItem] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(controls)
        layout.addLayout(settings)
        plot_row = QHBoxLayout()
        plot_row.addWidget(self.plot, 1)
        plot_row.addWidget(self.legend, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(plot_row, 1)

        session.events.sequence.connect(lambda: self.reset())
        session.events.models.connect(lambda slot: self.reset())
        session.events.frame.connect(lambda frame: self.show_frame())
        session.events.finished.connect(lambda slot: self.refresh_metrics())
        session.events.step.connect(lambda slot, t: self.refresh_metrics())  # curves fill in per step
        self.reset()

    # -- state from the session -----------------------------------------------------------
    def reset(self) -> None:
        session = self.session
        length = session.timeline_length
        plan = session.plan
        for spin in (self.context_spin, self.horizon_spin, self.now_spin):
            spin.setVisible(plan is not None)
        if plan is not None:
            values = (
                (self.context_spin, 1, plan.length, plan.pre),
                (self.horizon_spin, 1, 999, plan.aft),
                (self.now_spin, plan.pre - 1, plan.length - 1, plan.now),
            )
            for spin, low, high, value in values:
                spin.blockSignals(True)
                spin.setRange(low, high)
                spin.setValue(value)
                spin.blockSignals(False)
            self.now_spin.setVisible(plan.length > plan.pre)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(length - 1, 0))
        self.slider.blockSignals(False)
        playable = session.frames is not None and length >= 2  # Space on an empty window: nothing
        self.play_button.setEnabled(playable)
        if not playable and self.play_button.isChecked():
            self.play_button.setChecked(False)
        self.context_region.setRegion((-0.5, session.pre - 0.5))
        observed = session.num_frames if plan is not None else length
        self.future_region.setVisible(observed < length)
        self.future_region.setRegion((observed - 0.5, length - 0.5))
        self.plot.setXRange(-0.5, max(length, 20) - 0.5, padding=0)
        self._label_frames()
        self.refresh_metrics()
        self.show_frame()

    def _label_frames(self) -> None:
        """Frame numbers under the context, leads ("+6 min") under the predicted frames."""
        axis = self.plot.getAxis("bottom")
        plan = self.session.plan
        if plan is None:
            axis.setTicks(None)
            self.plot.setLabel("bottom", "frame")
            return
        every = max(1, plan.timeline_length // 24)
        ticks = [(k, str(k)) for k in range(0, plan.pre, every)]
        for k, label in enumerate(plan.lead_labels(short=True), start=plan.pre):
            if (k - plan.pre) % every == 0:
                ticks.append((k, label))
        axis.setTicks([ticks])
        self.plot.setLabel("bottom", "frame (context) · lead after now (predicted)")

    def _on_forecast_spin(self) -> None:
        self.forecast_changed.emit(
            self.context_spin.value(), self.horizon_spin.value(), self.now_spin.value()
        )

    def show_frame(self) -> None:
        session = self.session
        frame = session.frame
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self.cursor.setValue(frame)
        if session.frames is None:
            self.frame_label.setText("no sequence")
            self.frame_box.setText("")
            return
        kind = "context" if session.is_context(frame) else "predicted"
        if not session.is_context(frame) and session.plan is not None:
            lead = session.plan.lead_of(frame)
            kind = f"predicted {session.plan.lead_labels()[lead - 1]}"
            kind += "" if session.is_observed(frame) else " · not observed yet"
        colour = CONTEXT_COLOUR if session.is_context(frame) else PREDICTED_COLOUR
        if not self.frame_box.hasFocus():  # never overwrite what the user is typing
            self.frame_box.setText(session.frame_text(frame))
        # plain text, its colour set only when it changes: no rich-text layout on every step
        self.frame_label.setText(f"/ {session.timeline_length - 1} · {kind}")
        if self._label_colour != colour:
            self._label_colour = colour
            palette = self.frame_label.palette()
            palette.setColor(QPalette.ColorRole.WindowText, QColor(colour))
            self.frame_label.setPalette(palette)

    def refresh_metrics(self) -> None:
        """Offer every metric the finished rollouts have, keeping the user's choice."""
        names: list[str] = []
        for _, slot in self.session.models:
            names += [n for n in slot.metrics if n not in names]
        names += [n for n in self.session.verification if n not in names]
        current = self.metric.currentText()
        self.metric.blockSignals(True)
        self.metric.clear()
        self.metric.addItems(names)
        default = current if current in names else ("mse" if "mse" in names else (names[0] if names else ""))
        self.metric.setCurrentText(default)
        self.metric.blockSignals(False)
        self.refresh_curves()

    def refresh_curves(self) -> None:
        name = self.metric.currentText()
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {}
        for index, slot in self.session.models:
            values = slot.metrics.get(name)
            if values is None:
                continue
            frames = np.arange(len(values))
            self.curves[index] = self.plot.plot(
                frames,
                values,
                pen=pg.mkPen(MODEL_PENS[index], width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=MODEL_PENS[index],
                name=f"{slot.name}",
                connect="finite",
            )
            cache_curve(self.curves[index])
        entries = [(MODEL_PENS[i], self.session.slots[i].name) for i in self.curves]
        for curve in self.verification_curves:
            self.plot.removeItem(curve)
        self.verification_curves = []
        verified = self.session.verification.get(name)
        pairs = self.session.verification_pairs
        if verified is not None and pairs is not None and int(pairs.sum()):
            leads = np.arange(1, len(verified) + 1)
            self.verification_curves.append(
                self.plot.plot(
                    self.session.pre + leads - 1,
                    verified,
                    pen=pg.mkPen("#059669", width=2, style=Qt.PenStyle.DashLine),
                    symbol="s",
                    symbolSize=6,
                    symbolBrush="#059669",
                    name=f"verified this session ({int(pairs.sum())} pairs)",
                    connect="finite",
                )
            )
            cache_curve(self.verification_curves[-1])
            entries.append(("#059669", f"verified this session ({int(pairs.sum())} pairs)"))
        set_legend(self.legend, entries)
        self.plot.setLabel("left", name)
        self._fit_y()

    def _fit_y(self) -> None:
        """Fit the y range to the curves by hand: pyqtgraph's y auto-range would be recomputed on
        every frame step, because the moving cursor tells the view its bounds changed."""
        values = [c.yData for c in self.curves.values() if c.yData is not None and len(c.yData)]
        finite = np.concatenate(values) if values else np.empty(0)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1e-6)
            self.plot.setYRange(lo - pad, hi + pad, padding=0)
        else:
            self.plot.setYRange(0, 1, padding=0)

    # -- user intent ---------------------------------------------------------------------------
    def _on_slider(self, value: int) -> None:
        self.session.frame = value

    def focus_frame_box(self) -> None:
        self.frame_box.setFocus()
        self.frame_box.selectAll()

    def _on_frame_typed(self) -> None:
        """Go to the typed frame (or time); a text that is neither says why in the tooltip."""
        try:
            self.session.frame = self.session.parse_frame(self.frame_box.text())
        except ValueError as exc:
            self.frame_box.setStyleSheet("background: #fecaca")
            self.frame_box.setToolTip(str(exc))
            return
        self.frame_box.setStyleSheet("")
        self.frame_box.clearFocus()
        self.show_frame()

    def _on_plot_clicked(self, event) -> None:
        view = self.plot.plotItem.vb
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        x = view.mapSceneToView(event.scenePos()).x()
        if math.isfinite(x):
            self.session.frame = round(x)

    def step(self, delta: int) -> None:
        self.session.frame = self.session.frame + delta

    def jump(self, to_end: bool) -> None:
        self.session.frame = self.session.timeline_length - 1 if to_end else 0

    def toggle_play(self) -> None:
        """Space: play or pause; nothing to play on an empty window or a one-frame timeline."""
        if self.session.frames is None or self.session.timeline_length < 2:
            return
        self.play_button.toggle()

    def set_playing(self, playing: bool) -> None:
        if playing and self.session.timeline_length < 2:  # nothing to play: stay paused
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
            playing = False
        self.play_button.setText("⏸" if playing else "▶")
        if playing:
            if self.session.frame >= self.session.timeline_length - 1:
                self.session.frame = 0
            self.clock.start()
            self.dropped_frames = 0
            self.timer.start(int(1000 / self.fps.value()))
        else:
            self.timer.stop()

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def advance(self) -> None:
        """Next frame(s) at the chosen fps, in real time: late ticks skip frames, as ImageView does."""
        due = max(1, round(self.clock.restart() * self.fps.value() / 1000)) if self.clock.isValid() else 1
        self.dropped_frames += due - 1
        last = self.session.timeline_length - 1
        target = self.session.frame + due
        if target <= last:
            self.session.frame = target
        elif self.loop.isChecked():
            self.session.frame = 0 if self.session.frame == last else last
        else:
            self.session.frame = last
            self.play_button.setChecked(False)
