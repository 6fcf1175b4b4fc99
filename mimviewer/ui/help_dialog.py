"""The help dialog (F1, ?): every shortcut and mouse action, read from the window itself.

The shortcuts come from the window's QActions (``MainWindow.shortcuts``), the mouse actions
from the panels that implement them (their ``MOUSE_ACTIONS``), so the list cannot drift
from what the window does.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def _table(headers: list[str], rows: list[tuple[str, ...]]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setToolTip("Select rows and press Ctrl+C to copy them")
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class HelpDialog(QDialog):
    """Two tables: keys (menu, action, keys) and mouse (where, what)."""

    def __init__(
        self,
        shortcuts: list[tuple[str, str, str]],
        mouse: list[tuple[str, str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("mimviewer — keys and mouse")
        self.resize(720, 640)
        self.keys = _table(["menu", "action", "keys"], shortcuts)
        self.mouse = _table(["where", "mouse"], mouse)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Keys</b> (also in the menus)"))
        layout.addWidget(self.keys, 3)
        layout.addWidget(QLabel("<b>Mouse</b>"))
        layout.addWidget(self.mouse, 2)

    def rows(self, table: QTableWidget) -> list[tuple[str, ...]]:
        return [
            tuple(table.item(r, c).text() for c in range(table.columnCount()))
            for r in range(table.rowCount())
        ]
