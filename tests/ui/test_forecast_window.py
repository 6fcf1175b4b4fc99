"""Issue 16 in the window: forecast past the last frame, context / horizon / now, a watched folder."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scan_helpers import AFT, PRE, SETTLE, SIZE, STEP, T0, scan_bytes, scan_name, tiny_model
from tests.ui.conftest import wait_finished


@pytest.fixture
def ten_and_ten(tmp_path):
    """A 10-frame sequence and a 10 -> 10 model."""
    import torch

    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data import synthetic
    from mimviewer.nets import create_model

    np.save(tmp_path / "ten.npy", synthetic.bouncing_digits(1, length=10, size=16, num_digits=1, seed=3)[0])
    torch.manual_seed(0)
    model = create_model(
        "convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16, pre=10, aft=10
    )
    save_checkpoint(tmp_path / "m.safetensors", model)
    return tmp_path / "ten.npy", tmp_path / "m.safetensors", model


def test_ten_frames_and_a_ten_to_ten_model_forecast_ten_frames_past_the_end(qtbot, window, ten_and_ten):
    from mimviewer.inference import rollout

    sequence, checkpoint, model = ten_and_ten
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session

    assert (session.pre, session.aft, session.timeline_length) == (10, 10, 20)
    slot = session.slots[0]
    expected = rollout(model, session.all_frames[None], 10, 10).prediction[0]
    np.testing.assert_allclose(slot.outputs[-10:], expected, atol=1e-6)
    for frame in range(10, 20):
        session.frame = frame
        images = session.images_at(frame)
        assert images["gt"] is None and images["diff0"] is None and images["pred0"] is not None
        assert not session.is_observed(frame)
        assert all(np.isnan(values[frame]) for values in slot.metrics.values())  # absent, not zero
        panel = window.frames_panel
        assert "not observed yet" in panel.header.text() and f"+{frame - 9} frame" in panel.header.text()
        absent = panel.absent["gt"]
        assert "not observed yet" in absent.textItem.toPlainText() and absent.isVisible()
        assert panel.images["gt"].image is None
    session.frame = 5
    assert np.isfinite(slot.metrics["mse"][5]) and not window.frames_panel.absent["gt"].isVisible()
    assert window.timeline.future_region.isVisible()
    assert window.timeline.future_region.getRegion() == pytest.approx((9.5, 19.5))


def test_context_horizon_and_now_are_the_users(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files  # 12 frames, a 6 -> 6 model
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session, timeline = window.session, window.timeline
    assert (session.pre, session.aft, session.plan.now) == (6, 6, 5)  # the truth is all there
    assert timeline.now_spin.isVisibleTo(window) and timeline.horizon_spin.value() == 6

    timeline.horizon_spin.setValue(9)  # past the trained horizon: runs on
    wait_finished(qtbot, window)
    assert session.aft == 9 and session.slots[0].outputs.shape[0] == 6 + 9 - 1
    assert "past the trained horizon (6)" in session.frame_note(6 + 8)
    assert np.isnan(session.slots[0].metrics["mse"][12:]).all()  # frames 12..14 are not in the data
    assert np.isfinite(session.slots[0].metrics["mse"][1:12]).all()

    timeline.now_spin.setValue(11)  # now = the last frame: everything predicted lies ahead
    wait_finished(qtbot, window)
    assert session.start == 6 and session.num_frames == 6
    session.frame = 3
    expected = session.renderer.frames(session.all_frames[9])
    assert np.array_equal(window.frames_panel.images["gt"].image, expected)
    assert "sequence frame 9" in window.frames_panel.header.text()


def test_the_window_export_of_a_forecast_marks_the_future(qtbot, window, ten_and_ten, tmp_path):
    import imageio.v2 as imageio

    from mimviewer import export

    sequence, checkpoint, _ = ten_and_ten
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    out = tmp_path / "f.gif"
    with qtbot.waitSignal(window.exported, timeout=60_000):
        window.export("gif", out)
    images = imageio.mimread(out)
    assert len(images) == 20
    y, x = export.comparison_layout(np.zeros((1, 1, 16, 16)), {"m": None}).panel_origin(0)
    assert np.abs(images[15][y + 1, x + 2, :3].astype(int) - export.ABSENT_COLOUR).max() <= 8
    assert np.abs(images[5][y + 1, x + 2, :3].astype(int) - export.ABSENT_COLOUR).max() > 8


@pytest.mark.timeout(120)
def test_a_watched_folder_moves_now_and_verifies(qtbot, window, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data.synthetic import radar_storms

    feed = tmp_path / "feed"
    feed.mkdir()
    save_checkpoint(tmp_path / "m.safetensors", tiny_model())
    storm = radar_storms(1, length=6, size=SIZE, seed=4)[0]
    for k in range(3):
        (feed / scan_name(k)).write_bytes(scan_bytes(storm[k]))
    window.open_paths(checkpoint=tmp_path / "m.safetensors", run=False)

    assert window.watch_folder(feed, thresholds=(0.5, 5.0), settle_s=SETTLE)
    qtbot.waitUntil(lambda: window.live.forecasts == 1 and not window.runner.is_running, timeout=60_000)
    session = window.session
    assert session.plan.now_time == T0 + 2 * STEP and session.timeline_length == PRE + AFT
    assert "valid 12:18" in session.frame_note(PRE)
    for k in (3, 4):
        (feed / scan_name(k)).write_bytes(scan_bytes(storm[k]))
        qtbot.waitUntil(
            lambda k=k: window.live.forecasts == k - 1 and not window.runner.is_running, timeout=60_000
        )
    assert session.plan.now_time == T0 + 4 * STEP
    assert session.verification_pairs.tolist() == [2, 1]
    assert "csi@0.5" in session.verification and np.isfinite(session.verification["pod@0.5"][0])
    window.timeline.metric.setCurrentText("csi@0.5")
    (curve,) = window.timeline.verification_curves  # over the forecast frames, lead by lead
    x, y = curve.getData()
    assert x.tolist() == [PRE, PRE + 1]
    np.testing.assert_array_equal(y, session.verification["csi@0.5"])
    window.stop_watching()
    assert window.live is None and not window.watcher.is_watching


def test_view_takes_context_horizon_and_now_from_the_command_line(qtbot, window, ten_and_ten, monkeypatch):
    from mimviewer.ui import app

    sequence, checkpoint, _ = ten_and_ten
    setups = []
    monkeypatch.setattr(
        app, "run_window", lambda setup, screenshot=None, load=None: setups.append(setup) or 0
    )
    monkeypatch.setattr(app, "has_display", lambda: True)
    from mimviewer.cli import build_parser

    parsed = build_parser().parse_args(
        [
            "view",
            str(sequence),
            "-c",
            str(checkpoint),
            "--pre",
            "4",
            "--aft",
            "13",
            "--now",
            "6",
            "--device",
            "cpu",
        ]
    )
    assert parsed.run(parsed) == 0
    setups[0](window, None)  # run_window hands setup what it loaded in the background (nothing here)
    wait_finished(qtbot, window)
    plan = window.session.plan
    assert (plan.pre, plan.aft, plan.now, plan.first) == (4, 13, 6, 3)
    assert int(plan.beyond_trained.sum()) == 3 and window.session.slots[0].outputs.shape[0] == 16


@pytest.mark.timeout(120)
def test_watch_opens_the_window_on_the_folder_and_saves_a_screenshot(tmp_path):
    import imageio.v2 as imageio

    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.cli import main
    from mimviewer.data.synthetic import radar_storms

    feed = tmp_path / "feed"
    feed.mkdir()
    save_checkpoint(tmp_path / "m.safetensors", tiny_model())
    storm = radar_storms(1, length=3, size=SIZE, seed=4)[0]
    for k in range(3):
        (feed / scan_name(k)).write_bytes(scan_bytes(storm[k]))
    shot = tmp_path / "live.png"

    code = main(
        ["watch", str(feed), "-c", str(tmp_path / "m.safetensors"), "--screenshot", str(shot),
         "--max-forecasts", "1", "--settle", str(SETTLE), "--stop-after", "60", "--device", "cpu"]
    )  # fmt: skip

    assert code == 0 and imageio.imread(shot).shape[:2] == (1000, 1600)
