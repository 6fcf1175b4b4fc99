"""What-if edits: JSON round trip, undo, exact no-ops, and effects only downstream in time."""

from __future__ import annotations

import numpy as np
import pytest

from mimviewer.inference import rollout
from mimviewer.nets import create_model, list_models
from mimviewer.whatif import (
    CopyFrame,
    EditList,
    Erase,
    MoveBlob,
    Paint,
    Scale,
    Shift,
    WhatIfError,
    apply_edits,
    blob_mask,
    run_whatif,
)

EVERY_KIND = [
    Erase(1, ((2.0, 3.0), (6.5, 3.0)), 1.5),
    Paint(0, ((4.0, 4.0),), 2.0, 0.75),
    MoveBlob(2, 3, 4, dx=2, dy=-1, threshold=0.2),
    Shift(1, -2, 3),
    Scale(0, intensity=1.5, zoom=0.8),
    CopyFrame(2, source=0),
]


def test_every_edit_kind_round_trips_through_json(tmp_path) -> None:
    edits = EditList(EVERY_KIND)
    assert EditList.from_json(edits.to_json()) == edits
    assert EditList.load(edits.save(tmp_path / "edits.json")) == edits
    assert [type(e) for e in EditList.load(tmp_path / "edits.json")] == [type(e) for e in EVERY_KIND]


def test_undo_redo() -> None:
    edits = EditList()
    edits.push(EVERY_KIND[0])
    edits.push(EVERY_KIND[1])
    assert edits.undo() == EVERY_KIND[1] and edits.edits == (EVERY_KIND[0],)
    assert edits.redo() == EVERY_KIND[1] and len(edits) == 2
    edits.undo()
    edits.push(EVERY_KIND[3])  # a new edit forgets what was undone
    assert edits.redo() is None and edits.edits == (EVERY_KIND[0], EVERY_KIND[3])
    assert EditList().undo() is None


def context_with_a_blob() -> np.ndarray:
    context = np.zeros((3, 1, 10, 12), np.float32)
    context[:, 0, 3:6, 2:5] = 0.8  # a 3x3 blob at x 2..4, y 3..5
    context[:, 0, 8, 10] = 0.5  # and a separate pixel
    return context


def test_edits_do_what_they_say() -> None:
    context = context_with_a_blob()
    moved = apply_edits(context, [MoveBlob(0, 3, 4, dx=4, dy=2)])[0, 0]
    assert moved[5:8, 6:9].min() == pytest.approx(0.8) and moved[3:6, 2:5].max() == 0.0
    assert moved[8, 10] == 0.5 and moved.sum() == pytest.approx(context[0].sum())  # only the blob moved
    erased = apply_edits(context, [Erase(1, ((3.0, 4.0),), 1.0)])
    assert erased[1, 0, 4, 3] == 0.0 and erased[1, 0, 8, 10] == 0.5
    painted = apply_edits(context, [Paint(2, ((10.0, 1.0),), 0.0, 0.3)])
    assert painted[2, 0, 1, 10] == pytest.approx(0.3)
    shifted = apply_edits(context, [Shift(0, 1, 0)])[0, 0]
    np.testing.assert_array_equal(shifted[:, 1:], context[0, 0, :, :-1])
    assert shifted[:, 0].max() == 0.0
    np.testing.assert_allclose(apply_edits(context, [Scale(1, intensity=0.5)])[1], context[1] * 0.5)
    copied = apply_edits(context, [Erase(0, ((3.0, 4.0),), 2.0), CopyFrame(2, 0)])
    np.testing.assert_array_equal(copied[2], copied[0])  # a copy of frame 0 as edited so far
    np.testing.assert_array_equal(context, context_with_a_blob())  # the original is never changed
    assert blob_mask(context[0], 3, 4, 0.1).sum() == 9


def test_bad_edits_say_what_is_wrong(tmp_path) -> None:
    context = context_with_a_blob()
    with pytest.raises(WhatIfError, match="frame 5 is not a context frame"):
        apply_edits(context, [Shift(5, 1, 1)])
    with pytest.raises(WhatIfError, match="no blob at"):
        apply_edits(context, [MoveBlob(0, 0, 0, 1, 1)])
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "edits": [{"kind": "smudge", "frame": 0}]}')
    with pytest.raises(WhatIfError, match=r"bad\.json: edit 1: unknown edit kind 'smudge'"):
        EditList.load(bad)
    bad.write_text('{"version": 1, "edits": [{"kind": "shift", "frame": 1.5}]}')
    with pytest.raises(WhatIfError, match="must be an integer"):
        EditList.load(bad)
    bad.write_text("not json")
    with pytest.raises(WhatIfError, match="not JSON"):
        EditList.load(bad)
    with pytest.raises(WhatIfError, match="no such edits file"):
        EditList.load(tmp_path / "missing.json")


def tiny(arch: str):
    return create_model(arch, num_hidden=(4, 4), filter_size=3, patch_size=2, height=8, width=6, pre=3, aft=2)


@pytest.mark.parametrize("arch", list_models())
def test_an_edit_that_changes_nothing_gives_an_identical_rollout(arch: str) -> None:
    model = tiny(arch)
    context = np.random.default_rng(1).random((3, 1, 8, 6), dtype=np.float32)
    no_ops = [Shift(0, 0, 0), Scale(1, 1.0, 1.0), CopyFrame(2, 2), Erase(1, (), 2.0)]
    result = run_whatif(model, context, no_ops)
    np.testing.assert_array_equal(result.edited_context, context)
    np.testing.assert_array_equal(result.edited.outputs, result.original.outputs)


@pytest.mark.parametrize("arch", list_models())
def test_an_erase_changes_the_prediction_only_downstream(arch: str) -> None:
    """Step t reads frame t: erasing context frame k leaves every output of steps t < k bitwise equal."""
    model = tiny(arch)
    context = 0.2 + 0.6 * np.random.default_rng(2).random((3, 1, 8, 6), dtype=np.float32)
    k = 1
    result = run_whatif(model, context, [Erase(k, ((3.0, 4.0),), 2.0)])
    before, after = result.original.outputs[0], result.edited.outputs[0]
    np.testing.assert_array_equal(after[:k], before[:k])
    assert all(np.abs(after[t] - before[t]).max() > 0 for t in range(k, len(before)))


def test_erase_downstream_on_a_bundled_model() -> None:
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.data.synthetic import bouncing_digits
    from mimviewer.paths import bundled_models_dir

    model = load_checkpoint(bundled_models_dir() / "predrnn_digits.safetensors").model
    frames = bouncing_digits(1, length=10, seed=3)[0]
    ys, xs = np.nonzero(frames[6, 0] > 0.5)
    edit = Erase(6, ((float(xs[0]), float(ys[0])),), 6.0)
    result = run_whatif(model, frames, [edit], aft=2)
    np.testing.assert_array_equal(result.edited.outputs[0, :6], result.original.outputs[0, :6])
    assert np.abs(result.difference).max() > 1e-3
    # and the same as rolling out the edited frames by hand
    by_hand = rollout(model, apply_edits(frames, [edit]), 10, 2)
    np.testing.assert_array_equal(by_hand.outputs, result.edited.outputs)
