"""The main window: frame views (centre), timeline (bottom), internals (right), menus, status."""

from __future__ import annotations

import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QToolBar,
    QWidget,
)
from superqt.utils import FunctionWorker

from mimviewer.errors import MimviewerError
from mimviewer.ui.delta_controls import DeltaControls
from mimviewer.ui.display_panel import DisplayPanel
from mimviewer.ui.error_hook import SlotErrorHook
from mimviewer.ui.explain_panel import ExplainPanel
from mimviewer.ui.frame_views import FramesPanel
from mimviewer.ui.internals import InternalsPanel
from mimviewer.ui.live import FolderWatcher
from mimviewer.ui.location_plot import LocationPlot
from mimviewer.ui.settings import Settings
from mimviewer.ui.timeline import Timeline
from mimviewer.ui.worker import CancellableJob, InferenceRunner, JobCancelled
from mimviewer.viewmodel import OutOfDeviceMemory, Session
from mimviewer.viewmodel.state import SUFFIX as STATE_SUFFIX
from mimviewer.viewmodel.state import ViewState

CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".safetensors", ".bin")
SEQUENCE_FILTER = "Sequences (*.npy *.npz *.h5 *.hdf5 *.mp4 *.avi *.mov *.gif *.png *.jpg);;All files (*)"
CHECKPOINT_FILTER = "Checkpoints (*.safetensors *.ckpt *.pth *.pt);;All files (*)"
# Export kinds: (menu text, file filter, default suffix)
EXPORTS: dict[str, tuple[str, str, str]] = {
    "gif": ("Comparison as GIF…", "GIF (*.gif)", ".gif"),
    "mp4": ("Comparison as MP4…", "MP4 video (*.mp4)", ".mp4"),
    "strip": ("Comparison strip as PNG…", "PNG (*.png)", ".png"),
    "heatmaps": ("Heatmap grid of this step as PNG…", "PNG (*.png)", ".png"),
    "heatmaps_gif": ("Heatmap grid of every step as GIF…", "GIF (*.gif);;MP4 video (*.mp4)", ".gif"),
    "metrics": ("Per-frame metrics as CSV…", "CSV (*.csv)", ".csv"),
    "gates": ("Gate statistics as CSV…", "CSV (*.csv);;JSON (*.json)", ".csv"),
}


# Keys the timeline answers wherever the focus is; keys a combo box would switch its value with.
TIMELINE_KEYS = {Qt.Key.Key_Space, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End}
COMBO_SWITCH_KEYS = {Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown}


def describe_error(exc: BaseException, path: str | Path | None) -> str:
    """One line for a message box: our errors as they are (they name their file); anything
    else as ``PATH: unexpected TypeName (first line of its text)``."""
    if isinstance(exc, MimviewerError):
        return " ".join(str(exc).split())
    lines = str(exc).strip().splitlines()
    detail = f" ({lines[0][:200]})" if lines else ""
    where = f"{path}: " if path is not None else ""
    return f"{where}unexpected {type(exc).__name__}{detail}"


class MainWindow(QMainWindow):
    """Widgets draw and forward intent; the :class:`Session` owns state and maths."""

    exported = Signal(object)  # the written path, or the exception

    def __init__(self, session: Session | None = None, settings: Settings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("mimviewer")
        self.setObjectName("mimviewer-main")
        self.setAcceptDrops(True)
        self.session = session or Session()
        self.settings = settings or Settings()
        self.runner = InferenceRunner(self.session, self)
        self.watcher = FolderWatcher(self)
        self.live = None  # the LiveFeed of a watched folder (File > Watch folder)
        self.watcher.batch.connect(self._on_scans)
        self.watcher.failed.connect(
            lambda exc: self.show_error("Watching the folder stopped", str(exc) or type(exc).__name__)
        )
        self.runner.finished.connect(self._on_run_finished)
        self.errors: list[str] = []  # every message shown by show_error (tests read it)
        self.message_box: QMessageBox | None = None
        self._export_worker: FunctionWorker | None = None
        self._export_dialog: QProgressDialog | None = None
        self.loader = None  # the background import of the engine at start-up (ui.app.run_window)
        self._export_job: CancellableJob | None = None
        self._export_path: Path | None = None

        self.frames_panel = FramesPanel(self.session)
        self.setCentralWidget(self.frames_panel)
        self.timeline = Timeline(self.session)
        self.internals = InternalsPanel(self.session)
        self.internals.rerun_requested.connect(self.runner.start)
        self.location = LocationPlot(self.session)
        self.internals.location_clicked.connect(self.show_location)
        self.internals.location_hovered.connect(self.location.follow)
        self.timeline.forecast_changed.connect(self.change_forecast)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.timeline_dock = self._dock("Timeline", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.internals_dock = self._dock("Internals", self.internals, Qt.DockWidgetArea.RightDockWidgetArea)
        self.location_dock = self._dock("Location", self.location, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.timeline_dock, self.location_dock, Qt.Orientation.Horizontal)
        self.location_dock.hide()  # until a heatmap pixel is clicked
        self.explain = ExplainPanel(self.session)
        self.explain_dock = self._dock("Why and what-if", self.explain, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.internals_dock, self.explain_dock)
        self.internals_dock.raise_()
        self.explain.attribution.failed.connect(lambda text: self.show_error("Attribution", text))
        self.explain.whatif.failed.connect(lambda text: self.show_error("What-if", text))
        self.explain.whatif.run_requested.connect(self.run_whatif)
        self.explain.attribution.brush_mode_changed.connect(self.frames_panel.set_brush_mode)
        self.frames_panel.brush_radius = self.explain.attribution.brush_radius.value
        self.session.events.sequence.connect(self._restore_edits)
        self.session.events.edits.connect(self._save_edits)

        self.status_text = QLabel("ready")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.setToolTip("Cancel inference (Ctrl+.)")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.runner.progress.connect(self._on_progress)
        self.runner.failed.connect(self._on_failed)

        self.display = DisplayPanel(self.session)
        self.display_dock = self._dock("Display", self.display, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.internals_dock, self.display_dock)
        self.internals_dock.raise_()
        # any exception escaping a slot reaches the user as the message box (one hook for all slots)
        self.error_hook = SlotErrorHook(self.show_error)
        self.error_hook.install()
        self._build_menus()
        for button, tip in (
            (self.menuBar().findChild(QAbstractButton, "qt_menubar_ext_button"), "More menus"),
            (self.findChild(QAbstractButton, "qt_toolbar_ext_button"), "More tools"),
        ):
            if button is not None:
                button.setToolTip(tip)
        # A focused combo box (device, metric, ...) would take Home/End/arrows and switch its
        # value (restarting inference): those keys drive the timeline instead.
        for combo in self.findChildren(QComboBox):
            combo.installEventFilter(self)
        self._restore_layout()
        self.session.events.theme.connect(self.apply_theme)
        saved_theme = self.settings.value("view/theme")
        self.session.theme = saved_theme if saved_theme in ("system", "light", "dark") else "system"
        self.session.events.sequence.connect(self._update_title)
        self.session.events.models.connect(lambda slot: self._update_title())
        self._update_title()

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        for button in dock.findChildren(QAbstractButton):  # Qt's own title-bar buttons
            if button.objectName() == "qt_dockwidget_floatbutton":
                button.setToolTip(f"Float the {title} panel as its own window (double-click its title)")
            elif button.objectName() == "qt_dockwidget_closebutton":
                button.setToolTip(f"Close the {title} panel (the View menu brings it back)")
        return dock

    def _action(self, menu, text: str, slot: Callable, shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(
            file_menu, "Open &sequence…", lambda: self.ask_open("sequence"), QKeySequence.StandardKey.Open
        )
        self._action(file_menu, "Open &checkpoint…", lambda: self.ask_open("checkpoint"), "Ctrl+K")
        self._action(
            file_menu, "Open checkpoint to &compare…", lambda: self.ask_open("compare"), "Ctrl+Shift+K"
        )
        self._action(file_menu, "Close the compared checkpoint", self.close_compared)
        file_menu.addSeparator()
        self._action(file_menu, "&Watch folder…", self.ask_watch, "Ctrl+Shift+W")
        self.stop_watch_action = self._action(file_menu, "Stop &watching", self.stop_watching)
        self.stop_watch_action.setEnabled(False)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self._action(file_menu, "&Open view state…", self.ask_open_state, "Ctrl+Shift+O")
        self._action(file_menu, "Save view &state…", self.ask_save_state, "Ctrl+Shift+S")
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("&Export")
        for kind, (text, _, _) in EXPORTS.items():
            self._action(export_menu, text, lambda kind=kind: self.ask_export(kind))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        run_menu = bar.addMenu("&Run")
        self._action(run_menu, "&Run inference", self.runner.start, "F5")
        self._action(run_menu, "&Cancel inference", self.runner.cancel, "Ctrl+.")
        self.device_choice = QComboBox()
        self.device_choice.addItems(["auto", "cpu"])  # GPUs are added once torch is loaded
        self.device_choice.setToolTip("Device the models run on")
        self.device_choice.currentTextChanged.connect(self._on_device)
        toolbar = self.addToolBar("Run")
        toolbar.setObjectName("toolbar-run")
        toolbar.addAction("Run", self.runner.start).setToolTip("Run inference (F5)")
        toolbar.addAction("Cancel", self.runner.cancel).setToolTip("Cancel inference")
        toolbar.addWidget(QLabel(" device "))
        toolbar.addWidget(self.device_choice)
        self.delta = DeltaControls(
            self.session, self.runner, run_menu, toolbar, self.status_text, self.show_error
        )

        go_menu = bar.addMenu("&Go")  # the timeline's keys, as actions: the help lists them from here
        self._action(go_menu, "&Play / pause", self.timeline.toggle_play, "Space")
        self._action(go_menu, "&Next frame", lambda: self.timeline.step(+1), "Right")
        self._action(go_menu, "P&revious frame", lambda: self.timeline.step(-1), "Left")
        self._action(go_menu, "&First frame", lambda: self.timeline.jump(to_end=False), "Home")
        self._action(go_menu, "&Last frame", lambda: self.timeline.jump(to_end=True), "End")
        self._action(go_menu, "&Type a frame or time…", self.timeline.focus_frame_box, "Ctrl+G")

        view_menu = bar.addMenu("&View")
        self._action(view_menu, "&Reset zoom", self.frames_panel.reset_zoom, "Ctrl+0")
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_actions = QActionGroup(self)
        for name, label in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark")):
            action = self._action(theme_menu, label, lambda name=name: setattr(self.session, "theme", name))
            action.setCheckable(True)
            action.setChecked(name == self.session.theme)
            action.setData(name)
            self.theme_actions.addAction(action)
        view_menu.addAction(self.timeline_dock.toggleViewAction())
        view_menu.addAction(self.internals_dock.toggleViewAction())
        view_menu.addAction(self.location_dock.toggleViewAction())
        view_menu.addAction(self.explain_dock.toggleViewAction())
        view_menu.addAction(self.display_dock.toggleViewAction())

        explain_menu = bar.addMenu("&Why")
        self._action(explain_menu, "&Explain this frame", self.explain_frame, "Ctrl+E")
        self._action(explain_menu, "Run &what-if", self.run_whatif, "Ctrl+R")
        self._action(explain_menu, "&Undo edit", self.session.undo_edit, "Ctrl+Z")
        self._action(explain_menu, "Re&do edit", self.session.redo_edit, "Ctrl+Shift+Z")
        explain_menu.addSeparator()
        self._action(explain_menu, "&Save the attribution…", self.ask_save_attribution)

        help_menu = bar.addMenu("&Help")
        help_action = self._action(help_menu, "&Keys and mouse…", self.show_help, "F1")
        help_action.setShortcuts([QKeySequence("F1"), QKeySequence("?")])

    # -- layout memory -------------------------------------------------------------------------
    def _layout_version(self) -> int:
        """A number that changes whenever the set of docks and toolbars does.

        A layout saved by a version with other docks would place the new ones wherever Qt
        puts unknown docks (stacked, the window taller than the screen): it is not restored.
        """
        names = sorted(w.objectName() for kind in (QDockWidget, QToolBar) for w in self.findChildren(kind))
        return zlib.crc32(",".join(names).encode()) & 0x7FFFFFFF

    def _restore_layout(self) -> None:
        version = self._layout_version()
        same_docks = self.settings.value("window/layout_version") == str(version)
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if same_docks and isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1600, 1000)
        if not (same_docks and isinstance(state, QByteArray) and self.restoreState(state, version)):
            self.default_layout()

    def default_layout(self) -> None:
        """Frames large in the centre, internals a third of the width, the timeline a quarter high."""
        width, height = max(self.width(), 1200), max(self.height(), 800)
        self.resizeDocks([self.internals_dock], [int(width * 0.36)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.timeline_dock], [int(height * 0.27)], Qt.Orientation.Vertical)

    def save_layout(self) -> None:
        version = self._layout_version()
        self.settings.set_value("window/layout_version", str(version))
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/state", self.saveState(version))

    def closeEvent(self, event) -> None:
        self.save_layout()
        self.hide()  # gone at once, even while a long step finishes in its thread
        self.shutdown()
        for dialog in list(self.internals.dialogs):
            dialog.close()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Ask every background job (inference, export) to stop; returns at once.

        A step already running ends in its thread and is then dropped; ``run_window`` waits
        for it after the event loop, while the worker's signals still exist (never "Signal
        source has been deleted"), with no window left on screen to freeze.
        """
        self.error_hook.uninstall()
        self.stop_watching()
        self.runner.cancel()
        self.explain.attribution.runner.cancel()
        if self._export_worker is not None:
            self.cancel_export()

    def show_location(self, slot: int, row: int, col: int) -> None:
        """Every gate and memory of every layer at one grid cell over time (the Location dock)."""
        self.location.show_location(slot, row, col)
        self.location_dock.show()
        self.location_dock.raise_()

    # -- why and what-if --------------------------------------------------------------------------
    def explain_frame(self, frame: int | None = None) -> bool:
        """Attribute the current (or given) predicted frame, or its region, in the background."""
        self.explain_dock.show()
        self.explain_dock.raise_()
        self.explain.setCurrentWidget(self.explain.attribution)
        return self.explain.attribution.explain(frame)

    def ask_save_attribution(self) -> None:
        stem = Path(self.session.source).stem or "mimviewer"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save the attribution",
            f"{stem}-attribution.png",
            "PNG (*.png);;GIF (*.gif);;Numbers (*.npz)",
        )
        if path:
            self.save_attribution(path)

    def save_attribution(self, path: str | Path) -> Path | None:
        """Write the shown attribution as the command line does (.png, .gif or .npz)."""
        try:
            written = self.session.save_attribution(path)
        except MimviewerError as exc:
            self.show_error("Could not save the attribution", str(exc))
            return None
        self.status_text.setText(f"wrote {written}")
        return written

    def run_whatif(self) -> None:
        """Roll the main model out from the edited context into the extra row."""
        try:
            slots = self.session.prepare_whatif()
        except MimviewerError as exc:
            self.show_error("What-if", str(exc))
            return
        self.runner.start(slots)

    def _edits_key(self) -> str:
        import hashlib

        return "whatif/" + hashlib.sha1(self.session.source.encode()).hexdigest()[:16]

    def _save_edits(self) -> None:
        """Edits are kept with the window's state, per sequence (restored when it is opened again)."""
        if self.session.source:
            self.settings.set_value(self._edits_key(), self.session.whatif.edits.to_json())

    def _restore_edits(self) -> None:
        from mimviewer.whatif import EditList

        text = self.settings.value(self._edits_key()) if self.session.source else None
        try:
            edits = EditList.from_json(text, source="saved edits") if isinstance(text, str) else EditList()
            self.session.set_edits(edits)
        except MimviewerError as exc:  # saved for another frame count: start empty, say why
            self.session.set_edits(EditList())
            self.status_text.setText(f"saved edits not restored: {exc}")

    # -- opening files ---------------------------------------------------------------------------
    def ask_open(self, kind: str) -> None:
        filters = SEQUENCE_FILTER if kind == "sequence" else CHECKPOINT_FILTER
        path, _ = QFileDialog.getOpenFileName(self, f"Open {kind}", "", filters)
        if path:
            self.open_paths(**{kind: path})

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        labels = {"sequence": "sequence", "checkpoint": "checkpoint", "compare": "compared checkpoint"}
        for kind, label in labels.items():
            for path in self.settings.recent_files(kind):
                self._action(
                    self.recent_menu, f"{label}: {path}", lambda p=path, k=kind: self.open_paths(**{k: p})
                )
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def open_paths(
        self,
        sequence: str | Path | None = None,
        checkpoint: str | Path | None = None,
        compare: str | Path | None = None,
        *,
        run: bool = True,
    ) -> bool:
        """Open files (any of them), then start inference when a sequence and a model are there."""
        current: str | Path | None = None
        try:
            if sequence is not None:
                current = sequence
                self.stop_watching()  # the user's own sequence replaces the live feed
                self.runner.cancel()
                self.session.open_sequence(sequence)
                self.settings.add_recent("sequence", sequence)
            if checkpoint is not None:
                current = checkpoint
                self.runner.cancel()
                self.session.load_checkpoint(checkpoint, slot=0)
                self.settings.add_recent("checkpoint", checkpoint)
            if compare is not None:
                current = compare
                self.runner.cancel()
                self.session.load_checkpoint(compare, slot=1)
                self.settings.add_recent("compare", compare)  # remembered as the compared one
        except Exception as exc:  # an unexpected failure must not take the window down
            self.show_error("Could not open the file", describe_error(exc, current), exc=exc)
            return False
        if self.session.notes:
            self.status_text.setText("sequence: " + "; ".join(self.session.notes))
        if run:
            self.runner.start()
        return True

    def close_compared(self) -> None:
        """Back to one model: drop the second one and run again."""
        if self.session.slots[1] is not None:
            self.runner.cancel()
            self.session.remove_model(1)
            self.runner.start()

    def move_window(self, start: int) -> None:
        """Run the models on frames from ``start`` on (a long sequence has room to move)."""
        self.runner.cancel()
        self.session.start = start
        self.runner.start()

    def change_forecast(self, context: int, horizon: int, now: int) -> None:
        """The user set context, horizon or "now" (timeline): run again with them."""
        self.change_forecast_to(context=context, horizon=horizon, now=now)
        if self.live is not None:  # the feed's next forecasts use the new context and horizon
            self.live.reconfigure(self.session.pre, self.session.aft)

    def change_forecast_to(
        self, *, context: int | None = None, horizon: int | None = None, now: int | None = None
    ) -> None:
        """Set any of context, horizon and "now" (the others stay) and run again."""
        self.runner.cancel()
        try:
            self.session.set_forecast(context=context, horizon=horizon, now=now)
        except MimviewerError as exc:
            self.show_error("Cannot forecast like that", str(exc))
            return
        self.runner.start()

    # -- live nowcasting ---------------------------------------------------------------------------
    def ask_watch(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Watch a folder of radar scans")
        if folder:
            self.watch_folder(folder)

    def watch_folder(
        self,
        folder: str | Path,
        *,
        thresholds: tuple[float, ...] | None = None,
        settle_s: float = 1.0,
        give_up_s: float = 60.0,
        frame_interval_s: float | None = None,
    ) -> bool:
        """Follow ``folder``: every new scan moves "now" and runs the forecast (needs a checkpoint)."""
        from mimviewer.metrics import DEFAULT_THRESHOLDS
        from mimviewer.viewmodel.live import LiveFeed

        self.stop_watching()
        try:
            if not Path(folder).is_dir():
                raise MimviewerError(f"{folder}: not a folder")
            feed = LiveFeed(
                self.session,
                folder,
                thresholds=thresholds or DEFAULT_THRESHOLDS,
                frame_interval_s=frame_interval_s,
            )
        except MimviewerError as exc:
            self.show_error("Cannot watch the folder", str(exc))
            return False
        self.live = feed
        self.watcher.start(folder, feed.read, settle_s=settle_s, give_up_s=give_up_s)
        self.stop_watch_action.setEnabled(True)
        self.status_text.setText(f"watching {folder}: waiting for scans")
        return True

    def stop_watching(self) -> None:
        if self.live is None:
            return
        self.watcher.stop()
        self.status_text.setText(f"stopped watching {self.live.folder}")
        self.live = None
        self.stop_watch_action.setEnabled(False)

    def _on_scans(self, batch) -> None:
        if self.live is None:
            return
        if self.live.accept(batch):
            self.runner.start()
        self.status_text.setText(self.live.status())

    def _on_run_finished(self, ok: bool) -> None:
        if ok and self.live is not None:
            self.live.finished()
            self.status_text.setText(self.live.status())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_dropped(paths)
        event.acceptProposedAction()

    def open_dropped(self, paths: list[Path]) -> None:
        """Checkpoints by suffix (a second one is compared), anything else is a sequence."""
        checkpoints = [p for p in paths if p.suffix.lower() in CHECKPOINT_SUFFIXES]
        sequences = [p for p in paths if p not in checkpoints]
        self.open_paths(
            sequence=sequences[0] if sequences else None,
            checkpoint=checkpoints[0] if checkpoints else None,
            compare=checkpoints[1] if len(checkpoints) > 1 else None,
        )

    # -- messages ----------------------------------------------------------------------------------
    def show_error(
        self, title: str, message: str, *, offer_cpu: bool = False, exc: BaseException | None = None
    ) -> QMessageBox:
        """Every error goes through here: a non-modal message box, the window stays usable.

        ``message`` is one line naming the file; an unexpected exception's traceback goes
        under "Show Details…", for a bug report, never in the message itself.
        """
        self.errors.append(message)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Close, self)
        if exc is not None and not isinstance(exc, MimviewerError):
            box.setDetailedText("".join(traceback.format_exception(exc)))
        if offer_cpu:
            cpu = box.addButton("Run on CPU", QMessageBox.ButtonRole.AcceptRole)
            cpu.clicked.connect(lambda: (self.device_choice.setCurrentText("cpu"), self.runner.start()))
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.message_box = box
        self.status_text.setText(f"error: {message.splitlines()[0] if message else title}")
        return box

    def _on_failed(self, exc: Exception) -> None:
        models = ", ".join(slot.source or slot.name for _, slot in self.session.models) or None
        if isinstance(exc, OutOfDeviceMemory):
            box = self.show_error("Out of device memory", describe_error(exc, models), offer_cpu=True)
            box.setInformativeText("Run on the CPU instead?")
        else:
            self.show_error("Inference failed", describe_error(exc, models), exc=exc)

    def _on_progress(self, done: int, total: int, text: str) -> None:
        running = self.runner.is_running
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status_text.setText(text)

    def engine_loaded(self) -> None:
        """torch is imported (in the background, after the window was shown): offer the GPUs."""
        for name in Session.devices():
            if self.device_choice.findText(name) < 0:
                self.device_choice.addItem(name)

    def _on_device(self, name: str) -> None:
        self.runner.device = name
        if self.session.models and self.session.frames is not None:
            self.runner.start()

    def _update_title(self) -> None:
        parts = [Path(self.session.source).name if self.session.source else ""]
        parts += [slot.name for _, slot in self.session.models]
        shown = " · ".join(p for p in parts if p)
        self.setWindowTitle(f"mimviewer — {shown}" if shown else "mimviewer")

    # -- keys -----------------------------------------------------------------------------------------
    def eventFilter(self, watched, event) -> bool:
        """Keys of a focused combo box: timeline keys go to the timeline, value-switching keys nowhere."""
        if isinstance(watched, QComboBox) and event.type() == QEvent.Type.KeyPress:
            key = Qt.Key(event.key())
            plain = not (event.modifiers() & Qt.KeyboardModifier.AltModifier)  # Alt+Down opens the list
            if key in TIMELINE_KEYS:
                self.keyPressEvent(event)
                return True
            if plain and key in COMBO_SWITCH_KEYS:
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Keys that reach the window itself (not through the shortcut map) run the same actions."""
        action = self._action_for(QKeySequence(event.keyCombination()))
        if action is not None:
            action.trigger()
            event.accept()
            return
        super().keyPressEvent(event)

    def _action_for(self, pressed: QKeySequence) -> QAction | None:
        """The enabled action with this shortcut. The one found for a key is kept and checked
        again on each use: searching every child on each held-key repeat costs more than the
        frame step it triggers."""
        kept_actions = self.__dict__.setdefault("_key_actions", {})
        kept = kept_actions.get(pressed.toString())
        if kept is not None and kept.isEnabled() and pressed in kept.shortcuts():
            return kept
        for action in self.findChildren(QAction):
            if action.isEnabled() and pressed in action.shortcuts():
                kept_actions[pressed.toString()] = action
                return action
        return None

    # -- help, view state, theme ---------------------------------------------------------------
    def shortcuts(self) -> list[tuple[str, str, str]]:
        """(menu, action, keys) of every action with a shortcut, read from the actions themselves."""
        rows = []
        for menu in self.menuBar().findChildren(QMenu):
            for action in menu.actions():
                keys = ", ".join(
                    k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
                )
                if keys:
                    rows.append((menu.title().replace("&", ""), action.text().replace("&", ""), keys))
        return rows

    def mouse_actions(self) -> list[tuple[str, str]]:
        """(where, what) of every mouse action, declared by the panels that implement them."""
        rows = []
        for panel in (self.frames_panel, self.internals, self.timeline):
            rows += list(getattr(panel, "MOUSE_ACTIONS", ()))
        return rows

    def show_help(self) -> QDialog:
        from mimviewer.ui.help_dialog import HelpDialog

        dialog = HelpDialog(self.shortcuts(), self.mouse_actions(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.help_dialog = dialog
        return dialog

    def ask_save_state(self) -> None:
        stem = Path(self.session.source).stem if self.session.source else "view"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save view state", f"{stem}{STATE_SUFFIX}", f"View state (*{STATE_SUFFIX})"
        )
        if path:
            self.save_state(path)

    def save_state(self, path: str | Path) -> Path | None:
        from mimviewer.viewmodel.state import write_state

        try:
            written = write_state(self.session, path)
        except (MimviewerError, OSError) as exc:
            self.show_error("Could not save the view state", str(exc))
            return None
        self.status_text.setText(f"saved the view state to {written}")
        return written

    def ask_open_state(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open view state", "", f"View state (*{STATE_SUFFIX} *.json);;All files (*)"
        )
        if path:
            self.open_state(path)

    def open_state(self, state) -> bool:
        """Open a view state (a ViewState or a file): its files, then its settings, then run."""
        from mimviewer.viewmodel.state import apply_settings, read_state

        try:
            if not isinstance(state, ViewState):
                state = read_state(state)
            self.runner.cancel()
            self.session.fit = state.fit
            if state.demo:
                from mimviewer.commands.demo import load_demo, show_demo

                show_demo(self.session, load_demo())
            opened = self.open_paths(
                sequence=state.sequence,
                checkpoint=None if state.demo else state.checkpoints[0],
                compare=state.checkpoints[1],
                run=False,
            )
            if not opened:
                return False
            if self.session.slots[1] is not None and state.checkpoints[1] is None:
                self.session.remove_model(1)
            if self.session.models and (state.context or state.horizon or state.now is not None):
                self.session.set_forecast(context=state.context, horizon=state.horizon, now=state.now)
            apply_settings(self.session, state)
        except MimviewerError as exc:
            self.show_error("Could not open the view state", str(exc))
            return False
        self.runner.start()
        return True

    def apply_theme(self, name: str | None = None) -> None:
        from mimviewer.ui.theme import apply_theme

        name = name or self.session.theme
        for action in self.theme_actions.actions():
            action.setChecked(action.data() == name)
        apply_theme(self, name)
        self.settings.set_value("view/theme", name)

    # -- export ------------------------------------------------------------------------------------
    def ask_export(self, kind: str) -> None:
        text, filters, suffix = EXPORTS[kind]
        stem = Path(self.session.source).stem or "mimviewer"
        path, _ = QFileDialog.getSaveFileName(self, text.rstrip("…"), f"{stem}-{kind}{suffix}", filters)
        if path:
            self.export(kind, path)

    def export(self, kind: str, path: str | Path) -> None:
        """Write one export in a worker thread behind a progress dialog; ``exported`` tells the end."""
        if not self.session.finished or not self.session.models:
            self.show_error(
                "Nothing to export yet", "Open a sequence and a checkpoint and let inference finish."
            )
            return
        try:
            job = CancellableJob(self.session.export_job(kind, Path(path)))
        except MimviewerError as exc:
            self.show_error("Nothing to export yet", str(exc))
            return
        dialog = QProgressDialog(f"Writing {Path(path).name}…", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Export")
        dialog.setMinimumDuration(0)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.canceled.connect(self.cancel_export)
        dialog.show()
        worker = FunctionWorker(job)
        worker.returned.connect(lambda written: self._export_done(written, None))
        worker.errored.connect(lambda exc: self._export_done(None, exc))
        self._export_worker, self._export_dialog, self._export_job = worker, dialog, job
        self._export_path = Path(path)
        worker.start()

    def cancel_export(self) -> None:
        """Stop the export being written; the file it would have replaced stays as it was."""
        if self._export_job is not None:
            self._export_job.cancel()
            self.status_text.setText("export cancelled")

    def _export_done(self, written: Path | None, exc: Exception | None) -> None:
        if self._export_dialog is not None:
            self._export_dialog.canceled.disconnect(self.cancel_export)
            self._export_dialog.close()
        self._export_worker = self._export_dialog = self._export_job = None
        if isinstance(exc, JobCancelled):
            self.status_text.setText("export cancelled")
            self.exported.emit(exc)
        elif exc is not None:
            self.show_error("Export failed", describe_error(exc, self._export_path), exc=exc)
            self.exported.emit(exc)
        else:
            self.status_text.setText(f"wrote {written}")
            self.exported.emit(written)
