"""The view model's why / what-if, without Qt: attribution job, edit list, the edited slot."""

import numpy as np
import pytest

from mimviewer.attribution import AttributionError, attribute
from mimviewer.nets import create_model
from mimviewer.viewmodel import Session, jobs
from mimviewer.viewmodel.attribution import attribution_job
from mimviewer.viewmodel.whatif import EDITED
from mimviewer.whatif import CopyFrame, EditList, Erase, WhatIfError


@pytest.fixture
def session() -> Session:
    rng = np.random.default_rng(0)
    s = Session()
    s.set_sequence(rng.random((8, 1, 16, 16), dtype=np.float32), source="noise")
    model = create_model(
        "predrnn", num_hidden=(4, 4), filter_size=3, patch_size=2, height=16, width=16, pre=4, aft=4
    )
    s.set_model(model, name="tiny")
    return s


def run(s: Session, only=None) -> None:
    run_id = s.start_run(only)
    for update in s.inference(run_id, device="cpu", only=only):
        assert s.accept(update)


def drain(generator):
    progress = []
    while True:
        try:
            progress.append(next(generator))
        except StopIteration as stop:
            return progress, stop.value


def test_attribution_job_draws_what_the_engine_computes(session):
    run(session)
    session.frame = 5
    session.set_region((2, 2, 10, 9))
    session.attribution.set_method("ig", "blur", 3)
    request = session.attribution.request(session)
    assert request.frame == 5 and request.mask.sum() == 56
    progress, view = drain(attribution_job(session, request))
    assert [p.done for p in progress] == list(range(1, progress[-1].total + 1))
    expected = attribute(session.slots[0].model, session.frames[:4], request)
    np.testing.assert_allclose(view.result.maps, expected.maps, rtol=1e-5, atol=1e-8)
    assert len(view.overlays) == len(view.maps) == 4 and view.overlays[0].shape == (16, 16, 3)
    assert view.memory_image.shape == (*view.memory_shares.shape, 3)
    seen = []
    session.events.attribution.connect(lambda: seen.append(True))
    session.accept_attribution(view)
    assert seen and session.attribution.context_frame == int(np.argmax(np.abs(view.frame_totals)))
    session.set_region(None)  # the whole frame
    assert session.attribution.request(session, 5).mask.all()
    with pytest.raises(AttributionError, match="no prediction to explain"):
        session.attribution.request(session, 0)


def test_edits_undo_and_the_edited_slot(session):
    run(session)
    session.push_edit(Erase(2, ((8.0, 8.0),), 3.0))
    session.push_edit(CopyFrame(3, 0))
    with pytest.raises(WhatIfError, match="not a context frame"):
        session.push_edit(Erase(6, ((1.0, 1.0),), 1.0))  # frame 6 is predicted, not context
    assert len(session.whatif.edits) == 2
    session.undo_edit()
    assert session.whatif.edits.edits == (Erase(2, ((8.0, 8.0),), 3.0),)
    session.redo_edit()
    edited_context = session.whatif.edited_context(session)
    np.testing.assert_array_equal(edited_context[3], session.frames[0])
    assert np.array_equal(session.edited_image(3), session.renderer.frames(session.frames[0]))
    only = session.prepare_whatif()
    assert only == (EDITED,)
    run(session, only)
    original, edited = session.slots[0], session.slots[EDITED]
    assert edited.finished and original.finished  # the original was not run again
    np.testing.assert_array_equal(edited.outputs[:2], original.outputs[:2])  # before the edited frame
    assert np.abs(edited.outputs[2:] - original.outputs[2:]).max() > 0
    # its difference view is edited - original, its metrics are against the truth
    expected = session.renderer.differences(edited.outputs[5], original.outputs[5])
    assert np.array_equal(edited.diff_images[5], expected)
    assert edited.metrics["mse"][6] == pytest.approx(
        float(((edited.outputs[5] - session.frames[6]) ** 2).mean()), rel=1e-4
    )
    assert session.value_at("diff2", 6, 3, 4) == pytest.approx(
        float(edited.outputs[5, 0, 3, 4] - original.outputs[5, 0, 3, 4]), abs=1e-6
    )
    # exports of the comparison leave the what-if row out; a new main model drops it
    _, predictions, _ = jobs.comparison_arrays(session)
    assert list(predictions) == ["tiny"]
    session.set_model(session.slots[0].model, name="again")
    assert session.slots[EDITED] is None and session.attribution.view is None


def test_a_full_run_rolls_out_the_edited_slot_after_the_original(session):
    session.set_edits(EditList([Erase(1, ((4.0, 4.0),), 2.0)]))
    only = session.prepare_whatif()
    assert only == (0, EDITED)  # nothing finished yet: both run, the original first
    run(session)
    assert session.slots[EDITED].finished
    np.testing.assert_array_equal(session.slots[EDITED].outputs[:1], session.slots[0].outputs[:1])
