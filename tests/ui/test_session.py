"""The window's view model, without Qt: a user's story told through the Session API."""

import numpy as np
import pytest

from mimviewer.nets import create_model
from mimviewer.viewmodel import Session, SlotDone, StepUpdate


@pytest.fixture
def session() -> Session:
    rng = np.random.default_rng(0)
    s = Session()
    s.set_sequence(rng.random((8, 1, 16, 16), dtype=np.float32), source="noise")
    model = create_model(
        "convlstm", num_hidden=(4, 4), filter_size=3, patch_size=2, height=16, width=16, pre=4, aft=4
    )
    s.set_model(model, name="tiny")
    return s


def run_all(s: Session) -> list:
    run = s.start_run()
    updates = list(s.inference(run, device="cpu"))
    for update in updates:
        assert s.accept(update)
    return updates


def test_rollout_streams_one_update_per_step_then_metrics(session):
    seen = []
    session.events.step.connect(lambda slot, t: seen.append(t))
    updates = run_all(session)
    assert [u.t for u in updates if isinstance(u, StepUpdate)] == list(range(session.steps))
    assert isinstance(updates[-1], SlotDone)
    assert seen == list(range(7))
    assert session.finished
    slot = session.slots[0]
    # the image of frame k is the rendered output of step k-1, whose diff is pred - GT
    session.frame = 5
    images = session.images_at()
    assert images["pred0"] is slot.images[4] and images["gt"] is session.gt_image(5)
    value = session.value_at("diff0", 5, 3, 7)
    assert value == pytest.approx(float(slot.outputs[4, 0, 3, 7] - session.frames[5, 0, 3, 7]), abs=1e-6)
    mse = slot.metrics["mse"]
    assert np.isnan(mse[0])
    assert mse[5] == pytest.approx(float(((slot.outputs[4] - session.frames[5]) ** 2).mean()), rel=1e-4)


def test_old_runs_are_ignored(session):
    old = session.start_run()
    first = next(session.inference(old, device="cpu"))
    session.start_run()
    assert not session.accept(first)
    assert session.slots[0].done_steps == 0


def test_threshold_change_re_reduces_kept_raw_values(session):
    run_all(session)
    before = session.saturation_curves("f")[0].copy()
    raw_f = session.slots[0].trace.raw["0/f"][:, 0]  # (steps, C, H', W')
    session.set_thresholds(0.45, 0.55)
    after = session.saturation_curves("f")[0]
    expected = ((raw_f < 0.45) | (raw_f > 0.55)).reshape(len(raw_f), -1).mean(1)
    np.testing.assert_allclose(after, expected, atol=1e-6)
    assert not np.allclose(before, after)
    assert not session.needs_rerun
    session.reduction = "saturated"
    step = session.step_of_frame(3)
    np.testing.assert_allclose(
        session.heatmap(1, "f", step),
        (
            (session.slots[0].trace.raw["1/f"][step, 0] < 0.45)
            | (session.slots[0].trace.raw["1/f"][step, 0] > 0.55)
        ).mean(0),
        atol=1e-6,
    )


def test_quantities_keep_only_what_the_model_has(session):
    session.quantities = ["f", "M", "H", "S"]
    assert session.quantities == ["f", "H"]
    assert session.heatmap(0, "M") is None


def test_window_moves_along_a_long_sequence(session):
    session.set_sequence(np.random.default_rng(1).random((12, 1, 16, 16), dtype=np.float32), source="long")
    run_all(session)
    assert session.slots[0].finished
    session.start = 2
    assert not session.slots[0].finished and session.slots[0].done_steps == 0  # results cleared
    np.testing.assert_array_equal(session.frames[0], session.all_frames[2])
    run_all(session)
    slot = session.slots[0]
    expected = ((slot.outputs[4] - session.all_frames[2 + 5]) ** 2).mean()
    assert slot.metrics["mse"][5] == pytest.approx(float(expected), rel=1e-4)
    assert np.array_equal(session.images_at(5)["gt"], session.renderer.frames(session.all_frames[7]))


def test_a_colour_video_opens_for_a_grey_model_by_luma_with_the_scale_in_its_units(tmp_path):
    import imageio

    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    imageio.mimwrite(tmp_path / "clip.gif", list(video), duration=0.1, loop=0)
    s = Session()
    s.set_model(
        create_model(
            "convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16, pre=4, aft=4
        ),
        name="grey",
    )
    s.open_sequence(tmp_path / "clip.gif")
    assert s.frames.shape == (8, 1, 16, 16)  # converted for the model, as `mimviewer export` does
    luma = video[0].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255
    np.testing.assert_allclose(s.frames[0, 0], luma, atol=2 / 255)  # GIF palettes round a little
    assert any("3 channel(s) -> 1" in note for note in s.notes)
    run_all(s)
    assert s.finished
    # the colour bar and the difference bar speak the video's own values (0..255), like the readout
    assert s.renderer.frame_bar().labels[-1] == "255"
    assert s.renderer.difference_bar().labels[-1] == "+128"


def test_the_context_always_fits_and_a_horizon_past_the_end_is_said_so(session):
    """12 frames, pre 4 + aft 4: moved past the end, the window keeps its whole context; the
    predicted frames beyond the data are marked as not observed, not silently dropped."""
    session.set_sequence(np.random.default_rng(1).random((12, 1, 16, 16), dtype=np.float32), source="long")
    session.start = 10
    assert session.start == 8 and (session.pre, session.aft) == (4, 4)
    assert session.is_observed(3) and not session.is_observed(4)
    assert "not observed" in session.frame_note(5)
