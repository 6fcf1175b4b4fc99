"""The internals panel in the window (issue 11): errors in slots reach the user, the compared
model's internals, a grid that fits every MIM quantity, the per-location plot, readouts that
follow the frame, settings checked."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from tests.ui.cell_colours import assert_cell_shows
from tests.ui.conftest import wait_finished


@pytest.fixture
def mim_files(tmp_path):
    """A 12-frame 16x16 sequence and a 4-layer MIM (every MIM quantity: 24 with dH) plus a PredRNN."""
    import torch

    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data import synthetic
    from mimviewer.nets import create_model

    frames = synthetic.bouncing_digits(1, length=12, size=16, num_digits=1, seed=3)[0]
    sequence = tmp_path / "digits.npy"
    np.save(sequence, frames)
    small = {"filter_size": 3, "patch_size": 2, "height": 16, "width": 16, "pre": 6, "aft": 6}
    torch.manual_seed(0)
    mim = tmp_path / "mim.safetensors"
    save_checkpoint(mim, create_model("mim", num_hidden=(4, 4, 4, 4), **small))
    predrnn = tmp_path / "predrnn.safetensors"
    save_checkpoint(predrnn, create_model("predrnn", num_hidden=(4, 4), **small))
    return sequence, mim, predrnn


class Emitter(QObject):
    fired = Signal()


def test_an_exception_in_any_slot_reaches_the_user_as_the_message_box(qtbot, window):
    emitter = Emitter()

    def broken_slot() -> None:
        raise RuntimeError("a bug in a slot")

    emitter.fired.connect(broken_slot)
    emitter.fired.emit()
    QTimer.singleShot(0, broken_slot)  # and from the event loop
    qtbot.waitUntil(lambda: len(window.errors) == 2, timeout=5000)
    assert window.errors == ["RuntimeError: a bug in a slot"] * 2
    box = window.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert "a bug in a slot" in box.text()


def test_every_mim_quantity_fits_the_grid_in_a_1600x1000_window(qtbot, window, mim_files):
    sequence, mim, _ = mim_files
    window.resize(1600, 1000)
    assert window.open_paths(sequence=sequence, checkpoint=mim)
    wait_finished(qtbot, window)
    session, internals = window.session, window.internals
    everything = session.available_quantities()
    assert len(everything) == 24
    session.quantities = everything
    qtbot.wait(50)
    grid = internals.grid
    cells = internals.cells
    assert len(cells) == 11 + 3 * 23  # layer 0 (ST-LSTM): 10 + dH; layers 1-3 (MIM blocks): 22 + dH
    sizes = {
        (round(v.sceneBoundingRect().width()), round(v.sceneBoundingRect().height()))
        for v, _ in cells.values()
    }
    widths, heights = {w for w, _ in sizes}, {h for _, h in sizes}
    assert max(widths) - min(widths) <= 1 and max(heights) - min(heights) <= 1  # equal cells
    assert min(widths) >= 48 and min(heights) >= 48  # readable
    # never cut off: the grid is as wide as its viewport allows, and every cell lies inside it
    assert grid.widget().width() <= grid.viewport().width()
    canvas = grid.canvas.rect()
    for view, _ in cells.values():
        rect = view.sceneBoundingRect()
        assert rect.left() >= 0 and rect.right() <= canvas.width() and rect.bottom() <= canvas.height()
    # one colour scale with its bar and units per quantity; each label says the equation
    assert set(grid.bars) == set(everything)
    assert "T + i ⊙ g" in grid.labels["C"].toolTip() or "f ⊙ C₋" in grid.labels["C"].toolTip()
    assert "D = o_N ⊙ tanh(N)" in grid.labels["Dn"].toolTip()  # the paper's name for MIM-N's output
    # frame 1 shows step 0: MIM-N computed nothing there
    session.frame = 1
    view, image, note = grid.cells[(1, "N")]
    assert note.isVisible()
    session.frame = 2
    assert not note.isVisible() and (image.image[..., 3] == 255).all()
    assert_cell_shows(window.internals, 1, "N", session.heatmap(1, "N"))


def test_the_compared_models_internals_are_reachable(qtbot, window, mim_files):
    sequence, mim, predrnn = mim_files
    assert window.open_paths(sequence=sequence, checkpoint=predrnn)
    assert window.open_paths(compare=mim)
    wait_finished(qtbot, window)
    internals = window.internals
    assert "S" not in internals.quantity_buttons
    internals.model_choice.setCurrentIndex(internals.model_choice.findData(1))
    assert internals.slot == 1 and "S" in internals.quantity_buttons and "N.f" in internals.quantity_buttons
    internals.quantity_buttons["S"].click()
    assert "S" in window.session.quantities and (1, "S") in internals.cells
    assert internals.cells[(1, "S")][1].image is not None


def test_click_shows_every_quantity_at_that_location_over_time(qtbot, window, mim_files):
    sequence, mim, _ = mim_files
    assert window.open_paths(sequence=sequence, checkpoint=mim)
    wait_finished(qtbot, window)
    session = window.session
    session.reduction = "channel"
    session.channel = 1
    window.internals.location_clicked.emit(0, 2, 5)
    assert window.location_dock.isVisible()
    plot = window.location
    raw = session.slots[0].trace.raw
    assert len(plot.curves) == len(raw)  # every gate and memory of every layer
    for (layer, name), curve in plot.curves.items():
        np.testing.assert_array_equal(curve.yData, raw[f"{layer}/{name}"][:, 0, 1, 2, 5], err_msg=name)
    # unpinned, it follows the cursor over the heatmaps
    plot.pin.setChecked(False)
    window.internals.location_hovered.emit(0, 4, 1)
    assert plot.location == (0, 4, 1)
    np.testing.assert_array_equal(plot.curves[(2, "S")].yData, raw["2/S"][:, 0, 1, 4, 1])


def test_the_readout_follows_the_keyboard(qtbot, window, mim_files):
    sequence, mim, _ = mim_files
    assert window.open_paths(sequence=sequence, checkpoint=mim)
    wait_finished(qtbot, window)
    session, internals = window.session, window.internals
    session.frame = 4
    internals._on_hover(1, "f'", 3, 2)  # what hovering that pixel does
    assert "step 3" in internals.hover.text()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert session.frame == 5
    value = session.heatmap(1, "f'", 4)[3, 2]
    assert "step 4" in internals.hover.text() and f"{value:.4g}" in internals.hover.text()


def test_settings_are_checked_in_the_panel(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    internals, session = window.internals, window.session
    internals.lo.setValue(0.95)  # above hi = 0.9: refused, the box goes back
    assert session.thresholds == (0.1, 0.9) and internals.lo.value() == pytest.approx(0.1)
    assert "lo < hi" in internals.hover.text()
    internals.eps.setValue(0.05)
    assert session.eps == pytest.approx(0.05)
    still = session.slots[0].stats["0/dH"][:, 5]
    raw = session.slots[0].trace.raw["0/dH"][:, 0]
    np.testing.assert_allclose(still, (np.abs(raw) < 0.05).reshape(len(raw), -1).mean(1), atol=1e-6)


def test_an_e3d_lstms_resting_steps_show_as_not_computed(qtbot, window, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data import synthetic
    from mimviewer.nets import create_model

    frames = synthetic.bouncing_digits(1, length=12, size=16, num_digits=1, seed=3)[0]
    np.save(tmp_path / "digits.npy", frames)
    options = {"window_length": 3, "window_stride": 1, "temporal_filter_size": 2}  # rebuilt every 2 steps
    model = create_model(
        "e3d_lstm",
        num_hidden=(4, 4),
        filter_size=3,
        patch_size=2,
        height=16,
        width=16,
        pre=6,
        aft=6,
        options=options,
    )
    save_checkpoint(tmp_path / "e3d.safetensors", model)
    assert window.open_paths(sequence=tmp_path / "digits.npy", checkpoint=tmp_path / "e3d.safetensors")
    wait_finished(qtbot, window)
    session, grid = window.session, window.internals.grid
    session.quantities = ["f'", "C", "dH"]
    for frame, computed in ((3, True), (4, False), (5, True), (6, False)):  # step = frame - 1
        session.frame = frame
        for name in ("f'", "C", "dH"):
            _view, image, note = grid.cells[(1, name)]
            assert note.isVisible() is not computed, (frame, name)
            assert bool((image.image[..., 3] == 255).all()) == computed  # NaN: transparent
            assert_cell_shows(window.internals, 1, name, session.heatmap(1, name))
        window.internals._on_hover(1, "C", 2, 2)
        assert ("not computed" in window.internals.hover.text()) is not computed
