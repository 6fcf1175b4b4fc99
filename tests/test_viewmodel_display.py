"""The view model's display state, frame box parsing and view state files, without Qt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mimviewer.render import GREY, VIRIDIS
from mimviewer.viewmodel import Session
from mimviewer.viewmodel.display import table_index
from mimviewer.viewmodel.heatmap_images import heatmap_rgba
from mimviewer.viewmodel.state import StateError, read_state, write_state
from mimviewer.viewmodel.timing import format_time, frame_text, parse_frame


def test_frame_box_reads_numbers_and_times():
    assert parse_frame("7", start=0, interval_s=None, length=10) == 7
    assert parse_frame(" 0 ", start=0, interval_s=None, length=10) == 0
    assert parse_frame("90 s", start=0, interval_s=30.0, length=10) == 3
    assert parse_frame("1:30", start=0, interval_s=30.0, length=10) == 3
    assert parse_frame("2 min", start=0, interval_s=30.0, length=10) == 4
    assert parse_frame("0:01:00", start=0, interval_s=30.0, length=10) == 2
    assert parse_frame("3 min", start=2, interval_s=30.0, length=10) == 4  # sequence time, window from 2
    for text, interval, reason in (
        ("12", None, "outside"),
        ("-1", None, "not a frame"),
        ("abc", None, "not a frame"),
        ("90 s", None, "no times"),
        ("10 min", 30.0, "outside"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_frame(text, start=0, interval_s=interval, length=10)
    assert frame_text(3, 0, None) == "3" and frame_text(3, 2, 30.0) == "3 (2:30)"
    assert format_time(3725) == "1:02:05"


def session_with_frames() -> Session:
    session = Session()
    rng = np.random.default_rng(0)
    session.set_sequence(rng.random((6, 1, 8, 8)).astype(np.float32))
    return session


def test_colour_map_and_levels_of_a_view():
    session = session_with_frames()
    frame = session.frames[2, 0]
    assert np.array_equal(session.images_at(2)["gt"], GREY[table_index(frame, 0.0, 1.0)])  # default
    session.set_display("gt", colour_map="viridis")
    assert np.array_equal(session.images_at(2)["gt"], VIRIDIS[table_index(frame, 0.0, 1.0)])
    session.set_display("gt", levels="auto")
    lo, hi = float(session.frames.min()), float(session.frames.max())
    assert session.view_levels("gt") == pytest.approx((lo, hi))
    assert np.array_equal(session.images_at(2)["gt"], VIRIDIS[table_index(frame, lo, hi)])
    session.set_display("gt", levels="percentile", percentile=10)
    assert session.view_levels("gt") == pytest.approx(tuple(np.percentile(session.frames, [10, 90])))
    session.set_display("gt", levels="fixed", fixed=(0.6, 0.2))  # given the wrong way round
    assert session.view_levels("gt") == (0.2, 0.6)
    with pytest.raises(ValueError, match="unknown colour map"):
        session.set_display("gt", colour_map="jet")
    assert "radar" not in session.colour_maps("gt")  # intensity data has no radar scale
    centres, counts = session.histogram("gt")
    assert counts.sum() == session.frames.size and len(centres) == len(counts)


def test_heatmaps_are_drawn_with_nan_transparent():
    data = np.array([[0.0, 0.5], [1.0, np.nan]], np.float32)
    rgba = heatmap_rgba(data, (0.0, 1.0))
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[1, 1]) == (0, 0, 0, 0) and (rgba[:, :, 3][~np.isnan(data)] == 255).all()
    assert np.array_equal(rgba[0, 0, :3], VIRIDIS[0]) and np.array_equal(rgba[1, 0, :3], VIRIDIS[255])


def test_a_state_file_round_trips_and_names_what_moved(tmp_path):
    frames = np.random.default_rng(1).random((6, 1, 8, 8)).astype(np.float32)
    sequence = tmp_path / "data" / "seq.npy"
    sequence.parent.mkdir()
    np.save(sequence, frames)
    session = Session()
    session.open_sequence(sequence)
    session.frame = 4
    session.set_display("gt", colour_map="viridis", levels="percentile", percentile=2.5)
    session.zoom = (1.0, 2.0, 4.0, 4.0)
    path = write_state(session, tmp_path / "data" / "v.mimviewer.json")
    state = read_state(path)
    assert (
        state.sequence == str(sequence.resolve()) and state.frame == 4 and state.zoom == (1.0, 2.0, 4.0, 4.0)
    )
    assert state.display["gt"]["colour_map"] == "viridis" and state.display["gt"]["percentile"] == 2.5
    # the folder moved as a whole: found beside the state file
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    again = read_state(moved / "v.mimviewer.json")
    assert again.sequence == str(moved / "seq.npy")
    # the sequence alone moved: one line naming the state file, the role and the path
    (moved / "seq.npy").rename(tmp_path / "seq.npy")
    with pytest.raises(StateError, match=r"sequence it names.*moved or deleted") as info:
        read_state(moved / "v.mimviewer.json")
    assert str(moved / "v.mimviewer.json") in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "not a readable view state"),
        ('{"format": "other"}', "not a mimviewer view state"),
        ('{"format": "mimviewer-view-state", "version": 9}', "version 9"),
        ('{"format": "mimviewer-view-state", "version": 1, "reduction": "max"}', "unknown reduction"),
        ('{"format": "mimviewer-view-state", "version": 1, "thresholds": [0.9, 0.1]}', "thresholds"),
        ('{"format": "mimviewer-view-state", "version": 1, "zoom": [0, 0, -1, 2]}', "zoom"),
        ('{"format": "mimviewer-view-state", "version": 1, "frame": "x"}', "frame must be"),
        (
            '{"format": "mimviewer-view-state", "version": 1, "display": {"gt": {"colour_map": "jet"}}}',
            "display",
        ),
    ],
)
def test_a_broken_state_file_is_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.mimviewer.json"
    path.write_text(content)
    with pytest.raises(StateError, match=reason) as info:
        read_state(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_state_file_is_json_with_a_format_tag(tmp_path):
    session = session_with_frames()
    path = write_state(session, tmp_path / "s.mimviewer.json")
    data = json.loads(path.read_text())
    assert data["format"] == "mimviewer-view-state" and data["version"] == 1 and data["sequence"] is None
