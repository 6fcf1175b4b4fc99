"""Dark and light themes (or the system's): Qt palette, pyqtgraph backgrounds and pens, and
toggle buttons whose checked state is obvious in both."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QPen
from PySide6.QtWidgets import QApplication, QWidget

# (window, base, text, plot background, plot foreground, accent)
COLOURS = {
    "light": ("#f5f5f5", "#ffffff", "#111111", "#ffffff", "#222222", "#2563eb"),
    "dark": ("#26282b", "#1d1f21", "#e6e6e6", "#17181a", "#d0d0d0", "#3b82f6"),
}
# Toggles (buttons with the property toggle=true): checked ones filled with the accent colour and
# bold, unchecked ones plain and outlined.
TOGGLE_STYLE = """
QToolButton[toggle="true"] {{ border: 1px solid {border}; border-radius: 3px; padding: 1px 4px; }}
QToolButton[toggle="true"]:checked {{
    background: {accent}; color: white; font-weight: bold; border-color: {accent};
}}
QToolButton[toggle="true"]:!checked {{ background: transparent; color: {text}; }}
"""


def resolve(name: str) -> str:
    """ "system" -> "dark" or "light" as the desktop says (Qt >= 6.5); others unchanged."""
    if name != "system":
        return name
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def palette(theme: str) -> QPalette:
    window, base, text, _, _, accent = (QColor(c) for c in COLOURS[theme])
    pal = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Highlight, accent),
        (QPalette.ColorRole.HighlightedText, QColor("white")),
    ):
        pal.setColor(role, colour)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#888888"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#888888"))
    return pal


def apply_theme(window: QWidget, name: str) -> str:
    """Apply a theme ("system", "light", "dark") to the application and every plot of ``window``;
    returns the one applied."""
    theme = resolve(name)
    _, _, text, background, foreground, accent = COLOURS[theme]
    app = QApplication.instance()
    app.setStyle("Fusion")
    app.setPalette(palette(theme))
    border = "#9ca3af" if theme == "light" else "#6b7280"
    style = TOGGLE_STYLE.format(border=border, accent=accent, text=text)
    for host in window.findChildren(QWidget):  # only where toggles live: an application-wide
        if host.property("toggle_host"):  # style sheet would re-polish every widget (0.1 s)
            host.setStyleSheet(style)
    pg.setConfigOptions(background=background, foreground=foreground)
    for view in window.findChildren(pg.GraphicsView):
        view.setBackground(background)
        for item in view.scene().items():
            if isinstance(item, pg.AxisItem):
                item.setPen(foreground)
                item.setTextPen(foreground)
            elif isinstance(item, pg.LabelItem):
                item.setText(item.text, color=foreground)
    for owner in window.findChildren(QWidget):
        for cursor in getattr(owner, "theme_cursors", ()):  # ui.Cursor or an InfiniteLine
            pen = cursor.line.pen() if hasattr(cursor, "line") else QPen(cursor.pen)
            pen.setColor(QColor(foreground))
            cursor.setPen(pen)
    window.setProperty("theme", theme)
    return theme
