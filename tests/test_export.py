"""An analyst exports what they saw: videos, strips, metrics and gate statistics, read back."""

import csv
import json
import math

import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer import export
from mimviewer.data.synthetic import bouncing_digits
from mimviewer.data.units import dbz_to_unit
from mimviewer.errors import ShapeError
from mimviewer.export import comparison
from mimviewer.inference import rollout
from mimviewer.nets import create_model
from mimviewer.render import DIVERGING, colour_scale
from mimviewer.trace import STAT_NAMES, ProbeSpec

PRE, AFT = 3, 3


@pytest.fixture
def sequence() -> np.ndarray:
    return bouncing_digits(1, length=PRE + AFT, size=16, num_digits=1, seed=3)[0]  # (6, 1, 16, 16)


def read_gif(path) -> np.ndarray:
    return np.stack([frame[..., :3] for frame in imageio.mimread(path)])


def close(pixel, colour, tolerance=12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)) <= tolerance))


def test_gif_has_a_frame_per_time_step_and_marks_context_and_predicted_panels(tmp_path, sequence):
    prediction = np.clip(sequence[PRE:] + 0.2, 0, 1)
    path = export.write_comparison(tmp_path / "cmp.gif", sequence, {"convlstm": prediction}, pre=PRE, fps=5)

    frames = read_gif(path)
    layout = export.comparison_layout(sequence, {"convlstm": prediction})
    assert frames.shape == (PRE + AFT, layout.height, layout.width, 3)
    assert layout.names == ("ground truth", "convlstm", "convlstm - GT")
    for t, frame in enumerate(frames):
        expected = export.CONTEXT_COLOUR if t < PRE else export.PREDICTED_COLOUR
        for panel in range(3):
            assert close(frame[layout.border_pixel(panel)], expected), (t, panel)
    # the GT panel shows the truth, enlarged: its top-left pixel has the grey of gt[t, 0, 0, 0]
    y, x = layout.panel_origin(0)
    grey = np.rint(sequence[-1, 0, 0, 0] * 255)
    assert close(frames[-1][y, x], (grey, grey, grey), 3)


def test_difference_panel_is_neutral_where_the_prediction_is_perfect(tmp_path, sequence):
    prediction = sequence[PRE:].copy()
    prediction[:, :, :8] += 0.3  # wrong in the top half only
    prediction = np.clip(prediction, 0, 1)
    path = export.write_comparison(tmp_path / "cmp.gif", sequence, {"m": prediction}, pre=PRE)

    frame = read_gif(path)[-1]
    layout = export.comparison_layout(sequence, {"m": prediction})
    y, x = layout.panel_origin(2)
    bottom = frame[y + layout.panel_height - 4 : y + layout.panel_height, x : x + layout.panel_width]
    zero_colour = DIVERGING[128]
    assert close(bottom.reshape(-1, 3).min(0), zero_colour, 6)
    assert close(bottom.reshape(-1, 3).max(0), zero_colour, 6)
    top = frame[y : y + 4, x : x + layout.panel_width]
    assert not close(top.reshape(-1, 3).min(0), zero_colour, 30)  # errors do show


def test_two_models_side_by_side(tmp_path, sequence):
    a, b = sequence[PRE:] * 0.5, sequence[PRE:]
    path = export.write_comparison(tmp_path / "two.gif", sequence, {"A": a, "B": b}, pre=PRE)
    layout = export.comparison_layout(sequence, {"A": a, "B": b})
    assert layout.names == ("ground truth", "A", "A - GT", "B", "B - GT")
    assert read_gif(path).shape[1:3] == (layout.height, layout.width)


def test_mp4_is_readable_with_the_right_frame_count(tmp_path, sequence):
    path = export.write_comparison(tmp_path / "cmp.mp4", sequence, {"m": sequence[PRE:]}, pre=PRE, fps=4)
    with imageio.get_reader(path) as reader:
        frames = [frame for frame in reader]
        assert reader.get_meta_data()["fps"] == pytest.approx(4)
    assert len(frames) == PRE + AFT
    assert frames[0].shape[0] % 16 == 0 and frames[0].shape[1] % 16 == 0


def test_radar_comparison_uses_the_radar_colour_scale(tmp_path):
    dbz = np.full((4, 1, 16, 16), -10.0)
    dbz[:, :, 4:12, 4:12] = 42.0  # a storm core
    frames = dbz_to_unit(dbz).astype(np.float32)
    path = export.write_comparison(tmp_path / "radar.gif", frames, {"m": frames[2:]}, pre=2, units="dBZ")

    frame = read_gif(path)[-1]
    layout = export.comparison_layout(frames, {"m": frames[2:]})
    y, x = layout.panel_origin(0)
    core = frame[y + layout.panel_height // 2, x + layout.panel_width // 2]
    assert close(core, colour_scale("dBZ").to_rgb(np.array([42.0]))[0], 8)


def test_bad_inputs_are_refused_with_a_clear_message(tmp_path, sequence):
    with pytest.raises(ShapeError, match="predicted frames"):
        export.write_comparison(tmp_path / "x.gif", sequence, {"m": sequence}, pre=PRE)
    with pytest.raises(export.ExportError, match=r"\.gif or \.mp4"):
        export.write_comparison(tmp_path / "x.avi", sequence, {"m": sequence[PRE:]}, pre=PRE)
    assert list(tmp_path.iterdir()) == []


def test_png_strip_has_a_row_per_model_and_a_column_per_frame(tmp_path, sequence):
    one = imageio.imread(export.write_strip(tmp_path / "1.png", sequence, {"A": sequence[PRE:]}, pre=PRE))
    two = imageio.imread(
        export.write_strip(tmp_path / "2.png", sequence, {"A": sequence[PRE:], "B": sequence[PRE:]}, pre=PRE)
    )
    fewer = imageio.imread(
        export.write_strip(tmp_path / "3.png", sequence[:-1], {"A": sequence[PRE:-1]}, pre=PRE)
    )
    assert one.ndim == 3 and one.shape[2] == 3
    row = two.shape[0] - one.shape[0]
    column = one.shape[1] - fewer.shape[1]
    assert row > 16 and column > 16  # one more model adds a row, one fewer frame drops a column
    assert one.shape[1] == two.shape[1]


def test_metrics_csv_and_json_parse_back_to_the_same_numbers(tmp_path):
    metrics = {
        "mse": np.array([0.1, 0.2, 1 / 3]),
        "psnr": np.array([10.0, math.inf, 4.77]),
        "csi@10": np.array([np.nan, 0.5, 0.25]),
    }
    export.write_metrics_csv(tmp_path / "m.csv", metrics, first_frame=PRE)
    export.write_metrics_json(tmp_path / "m.json", metrics, first_frame=PRE)

    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [3, 4, 5]
    for k, values in metrics.items():
        np.testing.assert_array_equal([float(r[k]) for r in rows], values)
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["first_frame"] == PRE
    assert document["per_frame"]["mse"] == metrics["mse"].tolist()
    assert document["per_frame"]["psnr"][1] is None and document["per_frame"]["csi@10"][0] is None
    assert document["summary"]["csi@10"] == pytest.approx(0.375)  # undefined frames left out


@pytest.fixture
def trace(sequence):
    model = create_model("convlstm", num_hidden=(4, 4), filter_size=3, patch_size=2, height=16, width=16)
    return rollout(model, sequence, PRE, AFT, probes=ProbeSpec()).trace


def test_gate_statistics_csv_and_json_match_the_trace(tmp_path, trace):
    export.write_trace_stats(tmp_path / "s.csv", trace)
    export.write_trace_stats(tmp_path / "s.json", trace)

    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    document = json.loads((tmp_path / "s.json").read_text())
    assert len(rows) == len(document["rows"]) == len(trace.stats) * trace.steps
    for row in rows:
        layer, name, step = int(row["layer"]), row["quantity"], int(row["step"])
        for stat in STAT_NAMES:
            expected = trace.stat(layer, name, stat)[step, 0]
            if stat == "frac_still" and name != "dH":  # dH only: empty elsewhere
                assert np.isnan(expected) and row[stat] == ""
            else:
                assert float(row[stat]) == expected
        assert row["kind"] == ("change" if name == "dH" else "gate" if name in "ifo" else "state")
        assert row["phase"] == ("predicted" if step + 1 >= PRE else "context")
    forget = next(r for r in document["rows"] if r["layer"] == 1 and r["quantity"] == "f" and r["step"] == 2)
    assert forget["frac_high"] == pytest.approx(float(trace.stat(1, "f", "frac_high")[2, 0]))
    assert document["lo"] == trace.spec.lo and document["pre"] == PRE


def test_heatmap_grid_has_a_row_per_layer_and_a_column_per_quantity(trace):
    small = export.render_heatmap_grid(trace, 1, ["f", "C"], "mean", cell=40)
    wide = export.render_heatmap_grid(trace, 1, ["f", "C", "H"], "mean", cell=40)
    saturated = export.render_heatmap_grid(trace, 1, ["f", "C"], "saturated", cell=40)
    assert small.dtype == np.uint8 and small.shape[2] == 3
    assert wide.shape[1] - small.shape[1] == 40 + export.MARGIN
    assert saturated.shape == small.shape
    assert export.render_heatmap_grid(trace, 1, ["not-a-quantity"], cell=40).shape[0] == small.shape[0]
    with pytest.raises(ShapeError):
        export.render_heatmap_grid(trace, trace.steps, ["f"])


def test_a_failed_export_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, sequence, monkeypatch):
    target = tmp_path / "report.gif"
    target.write_bytes(b"the user's old export")
    real = export.render_comparison

    def fails_midway(*args, **kwargs):
        for i, frame in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise RuntimeError("disk full")
            yield frame

    monkeypatch.setattr(comparison, "render_comparison", fails_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        export.write_comparison(target, sequence, {"m": sequence[PRE:]}, pre=PRE)

    assert target.read_bytes() == b"the user's old export"
    assert [p.name for p in tmp_path.iterdir()] == ["report.gif"]


def test_a_finished_export_replaces_the_old_file(tmp_path, sequence):
    target = tmp_path / "m.csv"
    target.write_text("old")
    export.write_metrics_csv(target, {"mse": np.array([0.5])})
    assert target.read_text().startswith("frame,mse")
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]


def test_a_long_model_name_keeps_the_difference_panel_title():
    from mimviewer.export.comparison import _title, comparison_layout
    from mimviewer.export.drawing import _text_width

    layout = comparison_layout(np.zeros((4, 1, 16, 16)), {"predrnn_digits_from_a_long_run.safetensors": None})
    title = _title(layout.names[2], layout.panel_width)
    assert title.endswith(" - GT") and title.startswith("predrnn")
    assert _text_width(title) <= layout.panel_width
