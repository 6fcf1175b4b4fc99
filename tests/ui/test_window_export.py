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


def test_an_exported_gif_frame_shows_the_window_pixels(qtbot, window, tiny_files, tmp_path, monkeypatch):
    """The window and the GIF draw with one renderer: every predicted frame's GT, prediction and
    difference panels hold exactly the window's images (enlarged by whole pixels)."""
    import numpy as np

    from mimviewer import export
    from mimviewer.export import writers
    from mimviewer.viewmodel import jobs

    written: list[np.ndarray] = []  # the frames the GIF encoder receives
    real_writer = writers.imageio.get_writer

    def recording_writer(*args, **kwargs):
        writer = real_writer(*args, **kwargs)
        append = writer.append_data
        writer.append_data = lambda image, *rest: (written.append(image.copy()), append(image, *rest))[1]
        return writer

    monkeypatch.setattr(writers.imageio, "get_writer", recording_writer)
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("gif", tmp_path / "out.gif")
    gt, predictions, _ = jobs.comparison_arrays(session)
    layout = export.comparison_layout(gt, predictions)
    read_back = iio.imread(tmp_path / "out.gif", index=None)[..., :3]
    assert len(written) == len(read_back) == session.pre + session.aft
    for frame in range(session.pre, session.pre + session.aft):
        session.frame = frame
        for index, view in enumerate(("gt", "pred0", "diff0")):
            y, x = layout.panel_origin(index)
            rows = slice(y, y + layout.panel_height, layout.zoom)
            columns = slice(x, x + layout.panel_width, layout.zoom)
            shown = window.frames_panel.images[view].image
            assert np.array_equal(written[frame][rows, columns], shown), (frame, view)
            assert np.array_equal(read_back[frame][rows, columns], shown), (frame, view)  # the file too
