"""What the window remembers between runs: recent files and its layout (an ini file)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QSettings

MAX_RECENT = 10


def settings_path() -> Path:
    """``$MIMVIEWER_CONFIG_DIR/mimviewer.ini``, else the platform's config folder (platformdirs)."""
    folder = os.environ.get("MIMVIEWER_CONFIG_DIR") or platformdirs.user_config_dir(
        "mimviewer", appauthor=False
    )
    return Path(folder) / "mimviewer.ini"


class Settings:
    """Thin wrapper over QSettings in ini format at :func:`settings_path`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def recent_files(self, kind: str) -> list[str]:
        """Recent files of one kind ("sequence", "checkpoint" or "compare": the compared checkpoint),
        newest first, existing only."""
        value = self._qsettings.value(f"recent/{kind}", [])
        names = [value] if isinstance(value, str) else list(value or [])
        return [n for n in names if Path(n).exists()]

    def add_recent(self, kind: str, path: str | Path) -> None:
        path = str(Path(path).resolve())
        names = [path, *(n for n in self.recent_files(kind) if n != path)][:MAX_RECENT]
        self._qsettings.setValue(f"recent/{kind}", names)
        self._qsettings.sync()

    def value(self, name: str, default=None):
        return self._qsettings.value(name, default)

    def set_value(self, name: str, value) -> None:
        self._qsettings.setValue(name, value)
        self._qsettings.sync()
