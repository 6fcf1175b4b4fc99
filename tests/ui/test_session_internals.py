"""The view model's internals (issue 11), without Qt, for every registered architecture: settings
re-reduce to exactly what a fresh run records, steps that compute nothing stay NaN, lo < hi is
enforced, the compared model's quantities are selectable and one location's series are the trace's."""

import numpy as np
import pytest
import torch

from mimviewer.errors import ConfigError
from mimviewer.nets import create_model, list_models
from mimviewer.viewmodel import Session

RESTING_E3D = {"window_length": 3, "window_stride": 1, "temporal_filter_size": 2}
CASES = [(arch, {}) for arch in list_models()] + [("e3d_lstm", {"options": RESTING_E3D})]
IDS = [arch if not options else f"{arch}-resting" for arch, options in CASES]


def make_session(arch: str, options: dict, compare: str | None = None) -> Session:
    rng = np.random.default_rng(0)
    s = Session()
    s.set_sequence(rng.random((8, 1, 16, 16), dtype=np.float32), source="noise")
    torch.manual_seed(0)  # the same weights in every session of a test
    for slot, name in enumerate(a for a in (arch, compare) if a):
        hidden = (4, 4, 4) if name == "predrnn_pp" else (4, 4)
        model = create_model(
            name,
            num_hidden=hidden,
            filter_size=3,
            patch_size=2,
            height=16,
            width=16,
            pre=4,
            aft=4,
            **(options if slot == 0 else {}),
        )
        s.set_model(model, name=name, slot=slot)
    return s


def run_all(s: Session) -> None:
    run = s.start_run()
    for update in s.inference(run, device="cpu"):
        assert s.accept(update)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_new_settings_give_what_a_fresh_run_gives(arch, options):
    changed = make_session(arch, options)
    run_all(changed)
    changed.set_thresholds(0.3, 0.65)
    changed.channel = 3
    changed.update_settings(eps=0.02, state_bound=0.3)
    assert not changed.needs_rerun
    fresh = make_session(arch, options)
    fresh.set_thresholds(0.3, 0.65)
    fresh.channel = 3
    fresh.update_settings(eps=0.02, state_bound=0.3)
    run_all(fresh)
    a, b = changed.slots[0], fresh.slots[0]
    assert a.maps.keys() == b.maps.keys()
    for k in a.maps:
        np.testing.assert_array_equal(a.maps[k], b.maps[k], err_msg=k)
        np.testing.assert_array_equal(a.stats[k], b.stats[k], err_msg=k)
        np.testing.assert_array_equal(a.valid[k], b.valid[k], err_msg=k)
    exported = changed.trace()
    assert exported.spec.lo == 0.3 and exported.spec.eps == 0.02


def test_not_computed_steps_are_nan_and_masked_in_the_window_state():
    s = make_session("mim", {})
    run_all(s)
    slot = s.slots[0]
    assert not slot.valid["1/N.f"][0] and slot.valid["1/N.f"][1:].all()
    assert np.isnan(slot.maps["1/N.f"][0]).all() and np.isnan(slot.stats["1/N.f"][0]).all()
    assert not s.computed(1, "N.f", 0) and s.computed(1, "N.f", 1)
    assert np.isnan(s.heatmap(1, "N", 0)).all()
    curve = s.saturation_curves("N.f")[1]
    assert np.isnan(curve[0]) and np.isfinite(curve[1:]).all()  # the curve breaks there
    e3d = make_session("e3d_lstm", {"options": RESTING_E3D})
    run_all(e3d)
    assert e3d.slots[0].valid["0/f'"].tolist() == [True, False] * 3 + [True]


def test_lo_not_below_hi_is_refused_and_nothing_changes():
    s = make_session("convlstm", {})
    run_all(s)
    before = s.slots[0].maps["0/f"].copy()
    with pytest.raises(ConfigError, match="lo < hi"):
        s.set_thresholds(0.7, 0.7)
    assert s.thresholds == (0.1, 0.9)
    np.testing.assert_array_equal(s.slots[0].maps["0/f"], before)


def test_the_compared_models_quantities_can_be_chosen():
    s = make_session("predrnn", {}, compare="mim")
    run_all(s)
    assert "S" not in s.available_quantities(0) and "S" in s.available_quantities(1)
    s.quantities = ["f", "S", "Dn", "N.f"]
    assert set(s.quantities) == {"f", "S", "Dn", "N.f"}
    assert s.heatmap(1, "S", 3, slot=1) is not None


def test_one_locations_series_are_the_raw_trace_there():
    s = make_session("mim", {})
    run_all(s)
    raw = s.slots[0].trace.raw
    s.reduction = "channel"
    s.channel = 2
    series = s.location_series(3, 5)
    for (layer, name), values in series.items():
        expected = raw[f"{layer}/{name}"][:, 0, 2, 3, 5]  # every step, batch item 0, channel 2, y=3, x=5
        np.testing.assert_array_equal(values, expected, err_msg=f"{layer}/{name}")
    assert len(series) == len(s.slots[0].maps)  # every gate and memory of every layer
    s.reduction = "mean"
    for (layer, name), values in s.location_series(3, 5).items():
        expected = raw[f"{layer}/{name}"][:, 0, :, 3, 5].astype(np.float64).mean(1)
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6, err_msg=f"{layer}/{name}")
    assert s.location_bounds("f") == (0.1, 0.9) and s.location_bounds("C") == (-0.9, 0.9)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_grid_cells_are_drawn_once_with_their_rows_scale(arch, options):
    """Each cell is drawn with the union of its row's layer levels, kept while nothing changes,
    drawn again after a change of reduction or of settings; NaN transparent, "not computed" known."""
    s = make_session(arch, options)
    run_all(s)
    layers = s.num_layers(0)
    for name in s.available_quantities(0):
        present = [layer for layer in range(layers) if s.has(layer, name)]
        levels = [s.heatmap_levels(layer, name) for layer in present]
        row = s.heatmap_row_levels(name)
        assert row == (min(lo for lo, _ in levels), max(hi for _, hi in levels))
        for layer in present:
            for step in range(s.steps):
                cell = s.heatmap_cell(layer, name, step)
                data = s.heatmap(layer, name, step)
                assert cell.computed == bool(np.isfinite(data).any())
                assert cell.image.shape == (*data.shape, 4)
                np.testing.assert_array_equal(cell.image[..., 3], np.where(np.isfinite(data), 255, 0))
                assert s.heatmap_cell(layer, name, step) is cell  # drawn once
    layer, name = 0, "H"
    before = s.heatmap_cell(layer, name, 1)
    s.reduction = "saturated"
    assert s.heatmap_row_levels(name) == (0.0, 1.0)
    assert s.heatmap_cell(layer, name, 1) is not before
    s.reduction = "split"  # shares below / above as blue / red, drawn as they are
    split = s.heatmap(layer, name, 1)
    shown = s.heatmap_cell(layer, name, 1).image[..., :3]
    np.testing.assert_array_equal(shown, np.rint(np.nan_to_num(split) * 255))
    s.reduction = "saturated"
    saturated = s.heatmap_cell(layer, name, 1)
    s.set_thresholds(0.3, 0.65)
    assert s.heatmap_cell(layer, name, 1) is not saturated  # new maps: drawn again
