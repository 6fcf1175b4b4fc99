"""Delta inference controls: a Run-menu toggle and a toolbar threshold for the delta row.

The row itself is the session's (:mod:`mimviewer.viewmodel.delta`); this only forwards the
user's intent and shows what the finished rollout skipped. The toggle is separate from the
threshold so that eps = 0, the exactness check the engine promises, can be shown too.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSignalBlocker
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QLabel, QMenu, QToolBar

from mimviewer.errors import MimviewerError
from mimviewer.ui.worker import InferenceRunner
from mimviewer.viewmodel import Session
from mimviewer.viewmodel.delta import DELTA

DEFAULT_EPS = 0.01  # the threshold the toggle starts with (docs/saturation.md's curves span 1e-3..1e-1)


class DeltaControls(QObject):
    """Turns the delta row on and off and sets its threshold; runs it through the window's runner."""

    def __init__(
        self,
        session: Session,
        runner: InferenceRunner,
        menu: QMenu,
        toolbar: QToolBar,
        status: QLabel,
        show_error,
    ) -> None:
        super().__init__(runner)
        self.session, self.runner, self.status, self.show_error = session, runner, status, show_error
        self.action = QAction("&Delta inference row", self)
        self.action.setCheckable(True)
        self.action.setToolTip(
            "Show the main model rolled out in delta mode (|Δh| < eps skipped) beside the exact prediction"
        )
        self.action.toggled.connect(self._on_toggled)
        menu.addAction(self.action)
        self.eps = QDoubleSpinBox()
        self.eps.setPrefix("delta eps ")
        self.eps.setDecimals(4)
        self.eps.setRange(0.0, 10.0)
        self.eps.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.eps.setValue(DEFAULT_EPS)
        self.eps.setKeyboardTracking(False)  # one rerun per typed number
        self.eps.setToolTip("Delta inference threshold: Δh entries below it are skipped (0: exact)")
        self.eps.valueChanged.connect(self._on_eps)
        self.summary = QLabel("")
        self.summary.setToolTip("Share of the recurrent multiply-adds the delta rollout skipped")
        toolbar.addSeparator()
        toolbar.addAction(self.action)
        toolbar.addWidget(self.eps)
        toolbar.addWidget(self.summary)
        session.events.models.connect(lambda _slot: self.sync())
        runner.finished.connect(self._on_finished)
        self.sync()

    def set_eps(self, eps: float | None) -> bool:
        """Show the delta row at ``eps`` (None: remove it) and run what it needs; False on a refused eps."""
        try:
            slots = self.session.set_delta(eps)
        except MimviewerError as exc:
            self.show_error("Delta inference", str(exc))
            self.sync()
            return False
        if slots:
            self.runner.start(slots)
        return True

    def sync(self) -> None:
        """The toggle and the threshold show the session's delta row (set from the CLI, or removed)."""
        eps = self.session.delta_eps
        with QSignalBlocker(self.action), QSignalBlocker(self.eps):
            self.action.setChecked(eps is not None)
            if eps is not None:
                self.eps.setValue(eps)
        self.action.setEnabled(self.session.slots[0] is not None)
        if eps is None:
            self.summary.setText("")

    def _on_toggled(self, on: bool) -> None:
        self.set_eps(self.eps.value() if on else None)

    def _on_eps(self, value: float) -> None:
        if self.action.isChecked():
            self.set_eps(value)

    def _on_finished(self, ok: bool) -> None:
        text = self.session.delta_status()
        if ok and text:
            self.status.setText(text)  # after the runner's "inference finished"
            slot = self.session.slots[DELTA]
            fraction = slot.delta.fraction if slot is not None and slot.delta is not None else float("nan")
            self.summary.setText(f" skipped {fraction:.1%}" if fraction == fraction else " nothing to skip")
