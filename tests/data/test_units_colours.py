"""Radar units and colour scales, checked against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from mimviewer.data import units
from mimviewer.render.colours import colour_scale, unit_to_rgb


def test_model_scale_is_the_hko7_pixel_scale():
    # HKO-7: pixel 0 is -10 dBZ, pixel 255 is 60 dBZ; the model sees pixel / 255.
    assert units.unit_to_dbz(0.0) == pytest.approx(-10.0)
    assert units.unit_to_dbz(1.0) == pytest.approx(60.0)
    assert units.dbz_to_unit(25.0) == pytest.approx(0.5)
    assert units.hko_pixel_to_dbz(255) == pytest.approx(60.0)
    assert units.hko_pixel_to_dbz(51) == pytest.approx(51 * 70 / 255 - 10)  # 4.0 dBZ
    for pixel in (0, 17, 128, 200, 255):
        assert units.dbz_to_unit(units.hko_pixel_to_dbz(pixel)) == pytest.approx(pixel / 255)


def test_marshall_palmer_against_hand_computed_values():
    # Z = 200 R^1.6: R = 1 mm/h -> Z = 200 -> 10 log10(200) = 23.0103 dBZ.
    assert units.rain_rate_to_dbz(1.0) == pytest.approx(23.0103, abs=1e-4)
    # 30 dBZ -> Z = 1000 -> R = (1000 / 200)^(1/1.6) = 5^0.625 = 2.7344 mm/h.
    assert units.dbz_to_rain_rate(30.0) == pytest.approx(5**0.625)
    # Another Z-R relation (convective, a = 300, b = 1.4): 40 dBZ -> (1e4 / 300)^(1/1.4).
    assert units.dbz_to_rain_rate(40.0, a=300, b=1.4) == pytest.approx((1e4 / 300) ** (1 / 1.4))
    rain = np.array([0.1, 1.0, 10.0, 100.0])
    np.testing.assert_allclose(units.dbz_to_rain_rate(units.rain_rate_to_dbz(rain)), rain, rtol=1e-12)


def test_rain_rate_and_model_scale_round_trip_through_dbz():
    # 1 mm/h = 23.0103 dBZ -> (23.0103 + 10) / 70 = 0.47158.
    assert units.rain_rate_to_unit(1.0) == pytest.approx(33.0103 / 70, abs=1e-5)
    assert units.rain_rate_to_unit(0.0) == 0.0  # no rain is the bottom of the scale, not -inf
    unit = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    back = units.rain_rate_to_unit(units.unit_to_rain_rate(unit))
    np.testing.assert_allclose(back, unit, atol=1e-6)
    assert back.dtype == np.float32


def test_conversions_run_on_torch_tensors_too():
    unit = torch.tensor([0.0, 0.5, 1.0])
    rain = units.unit_to_rain_rate(unit)
    assert isinstance(rain, torch.Tensor)
    assert rain[1].item() == pytest.approx(10 ** (0.625 * math.log10(10**2.5 / 200)), rel=1e-5)
    torch.testing.assert_close(units.rain_rate_to_unit(rain), unit)


def test_pysteps_dbz_scale_colours_each_5_dbz_band():
    scale = colour_scale("dBZ")
    assert scale.name == "pysteps"
    rgb = scale.to_rgb(np.array([5.0, 12.0, 33.0, 59.9, 61.0, np.nan]))
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 3)
    assert tuple(rgb[0]) == (0, 0, 0)  # below 10 dBZ: no rain
    assert tuple(rgb[1]) == (156, 126, 148)  # pySTEPS's first colour (red-grey)
    assert tuple(rgb[3]) == (225, 25, 0)  # its last colour, #E11900
    assert tuple(rgb[4]) == (139, 0, 0)  # over the range: darkred
    assert tuple(rgb[5]) == (0, 0, 0)  # missing data drawn as no rain
    assert len({tuple(c) for c in scale.colours}) == 10
    assert tuple(scale.to_rgb(33.0)) == tuple(rgb[2])  # a single value (0-d) too
    assert tuple(scale.to_rgb(np.float64("nan"))) == (0, 0, 0)


def test_rain_scale_levels_and_colour_bar():
    scale = colour_scale("mm/h")
    assert tuple(scale.to_rgb(np.array([0.5]))[0]) == (220, 0, 220)  # 0.40 - 0.63 mm/h: #DC00DC
    bar = scale.colour_bar()
    assert bar.units == "mm/h" and bar.title == "Rain rate"
    assert bar.labels[0] == "0.08" and bar.labels[5] == "1" and bar.labels[-1] == "160"
    # Ticks sit where the model-scale lookup table changes colour.
    lut = scale.lookup_table(1024)
    for value, position in zip(bar.values[1:-1], bar.positions[1:-1], strict=True):
        below, above = lut[int(position * 1023) - 1], lut[int(position * 1023) + 2]
        assert not np.array_equal(below, above), f"no colour change at {value} mm/h"


def test_grey_and_viridis_for_video():
    grey = unit_to_rgb(np.array([[0.0, 0.5, 1.0]]))
    assert grey.shape == (1, 3, 3)
    np.testing.assert_array_equal(grey[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    viridis = colour_scale("intensity", "viridis")
    np.testing.assert_array_equal(viridis.unit_to_rgb(np.array([0.0, 1.0])), [[68, 1, 84], [253, 231, 37]])
    assert colour_scale("intensity").colour_bar().labels == ("0", "0.25", "0.5", "0.75", "1")


def test_unknown_scale_or_units_are_refused():
    with pytest.raises(ValueError, match="unknown units"):
        colour_scale("kelvin")
    with pytest.raises(ValueError, match="unknown colour scale"):
        colour_scale("dBZ", "jet")


def test_radar_frame_bar_ticks_sit_on_the_bar_with_their_dbz_values():
    """positions are where ticks sit on the bar (model scale), values and labels say dBZ."""
    from mimviewer.data import units
    from mimviewer.render import FrameRenderer

    bar = FrameRenderer.for_units("dBZ", to_physical=units.unit_to_dbz).frame_bar()
    assert bar.positions and all(0.0 <= p <= 1.0 for p in bar.positions)
    assert bar.values[0] == 10.0 and bar.labels[0] == "10"
    assert bar.positions[0] == pytest.approx(units.dbz_to_unit(10.0))
