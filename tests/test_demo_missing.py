"""`mimviewer demo` (and `export --demo`) fail loudly when the bundled demo is missing: a packaging
regression must not look like a working demo with random weights."""

from __future__ import annotations

import json
import shutil

import pytest

import mimviewer.paths
from mimviewer.cli import main
from mimviewer.paths import bundled_models_dir


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A copy of the bundled models folder the commands read instead of the real one."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(bundled_models_dir() / "demo.json", folder / "demo.json")
    monkeypatch.setattr(mimviewer.paths, "bundled_models_dir", lambda: folder)
    return folder


@pytest.mark.parametrize(
    "command", [["demo", "--screenshot", "shot.png"], ["export", "--demo", "-o", "x.csv"]]
)
@pytest.mark.parametrize("missing", ["model", "demo.json"])
def test_a_missing_demo_is_one_line_and_a_nonzero_exit(
    command, missing, models_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    model = json.loads((models_dir / "demo.json").read_text())["model"]
    if missing == "demo.json":
        (models_dir / "demo.json").unlink()
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mimviewer: error: ") and "\n" not in err
    assert "installation is incomplete" in err
    assert (model if missing == "model" else "demo.json") in err
    assert not (tmp_path / "shot.png").exists() and not (tmp_path / "x.csv").exists()
