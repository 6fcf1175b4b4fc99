"""Exports from the window, read back: comparison GIF, heatmap grid PNG/GIF, metrics and gate CSVs."""

from __future__ import annotations

import imageio.v3 as iio
import pytest

from tests.ui.conftest import wait_finished


@pytest.mark.parametrize("kind", ["gif", "metrics", "heatmaps", "heatmaps_gif", "gates"])
def test_export_from_the_window(qtbot, window, tiny_files, tmp_path, kind):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    target = (
        tmp_path
        / {
            "gif": "out.gif",
            "metrics": "metrics.csv",
            "heatmaps": "grid.png",
            "heatmaps_gif": "grid.gif",
            "gates": "gates.csv",
        }[kind]
    )
    with qtbot.waitSignal(window.exported, timeout=60_000) as blocker:
        window.export(kind, target)
    assert blocker.args[0] == target
    session = window.session
    if kind == "gif":
        frames = iio.imread(target, index=None)
        assert frames.shape[0] == session.pre + session.aft
        assert frames.std() > 10  # drawn, not blank
    elif kind == "heatmaps_gif":
        frames = iio.imread(target, index=None)
        assert frames.shape[0] == session.steps and frames.std() > 10
    elif kind == "heatmaps":
        grid = iio.imread(target)
        assert grid.ndim == 3 and grid.std() > 10
    elif kind == "gates":
        lines = target.read_text().splitlines()
        trace = session.trace()
        assert len(lines) == 1 + sum(trace.steps for _ in trace.stats)  # one row per quantity and step
    else:
        lines = target.read_text().splitlines()
        assert lines[0].startswith("frame,") and "mse" in lines[0]
        mse_column = lines[0].split(",").index("mse")
        row = lines[7].split(",")
        assert float(row[mse_column]) == pytest.approx(session.slots[0].metrics["mse"][6], rel=1e-5)
