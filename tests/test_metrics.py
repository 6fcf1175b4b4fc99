"""A user scores predictions frame by frame; the numbers must match the field's definitions."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mimviewer.errors import ShapeError
from mimviewer.metrics import contingency, frame_metrics, skill_key, skill_scores, summary


def test_mse_mae_psnr_match_hand_computed_values_on_a_tiny_sequence():
    gt = np.zeros((2, 1, 2, 2), np.float32)  # (T, C, H, W)
    pred = gt.copy()
    pred[0, 0, 0, 0] = 0.5  # frame 0: one pixel off by 0.5
    pred[1] = 0.25  # frame 1: every pixel off by 0.25

    m = frame_metrics(gt, pred)

    np.testing.assert_allclose(m["mse"], [0.25 / 4, 0.0625])
    np.testing.assert_allclose(m["mae"], [0.5 / 4, 0.25])
    np.testing.assert_allclose(m["mse_frame"], [0.25, 0.25])  # summed over the 4 pixels
    np.testing.assert_allclose(m["mae_frame"], [0.5, 1.0])
    np.testing.assert_allclose(m["psnr"], [-10 * math.log10(0.0625), -10 * math.log10(0.0625)])


def test_batch_is_averaged_per_frame_and_a_perfect_frame_has_infinite_psnr():
    gt = np.zeros((2, 1, 1, 4, 4), np.float32)  # (N, T, C, H, W)
    pred = gt.copy()
    pred[1] = 0.5  # the second sequence is off by 0.5 everywhere

    m = frame_metrics(gt, pred)

    np.testing.assert_allclose(m["mse"], [0.125])  # (0 + 0.25) / 2
    assert m["psnr"][0] == math.inf  # one perfect sample makes the batch mean infinite, as in OpenSTL
    assert summary(m)["mse"] == pytest.approx(0.125)


def test_psnr_and_ssim_agree_with_scikit_image():
    rng = np.random.default_rng(1)
    gt = rng.random((3, 2, 16, 20)).astype(np.float32)  # 3 frames, 2 channels
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)

    m = frame_metrics(gt, pred)

    for t in range(3):
        expected_psnr = peak_signal_noise_ratio(gt[t], pred[t], data_range=1.0)
        expected_ssim = structural_similarity(gt[t], pred[t], data_range=1.0, channel_axis=0)
        assert m["psnr"][t] == pytest.approx(expected_psnr, rel=1e-6)
        assert m["ssim"][t] == pytest.approx(expected_ssim, abs=1e-6)
    assert frame_metrics(gt, gt)["ssim"] == pytest.approx(np.ones(3))


def test_ssim_with_the_old_openstl_data_range_matches_scikit_image_too():
    rng = np.random.default_rng(2)
    gt = rng.random((1, 1, 12, 12))
    pred = rng.random((1, 1, 12, 12))

    m = frame_metrics(gt, pred, ssim_data_range=2.0)

    assert m["ssim"][0] == pytest.approx(
        structural_similarity(gt[0, 0], pred[0, 0], data_range=2.0), abs=1e-6
    )


def test_psnr_and_ssim_score_the_prediction_clipped_to_the_display_range():
    gt = np.full((1, 1, 8, 8), 0.5)
    overshoot = np.full((1, 1, 8, 8), 1.5)  # clipped to 1.0 for PSNR/SSIM, raw for MSE

    m = frame_metrics(gt, overshoot)

    assert m["mse"][0] == pytest.approx(1.0)
    assert m["psnr"][0] == pytest.approx(-10 * math.log10(0.25))


def test_contingency_scores_on_a_hand_made_2x2_example():
    # obs/pred > 1: pixel 0 hit, 1 miss, 2 false alarm, 3 correct negative, per frame
    obs = torch.tensor([[[5.0, 5.0, 0.0, 0.0], [5.0, 5.0, 5.0, 0.0]]])  # (N=1, T=2, 4 pixels)
    pred = torch.tensor([[[5.0, 0.0, 5.0, 0.0], [5.0, 5.0, 0.0, 0.0]]])

    table = contingency(obs, pred, 1.0)
    scores = skill_scores(table)

    assert table["hits"].tolist() == [1, 2]
    assert table["misses"].tolist() == [1, 1]
    assert table["false_alarms"].tolist() == [1, 0]
    assert table["correct_negatives"].tolist() == [1, 1]
    np.testing.assert_allclose(scores["csi"], [1 / 3, 2 / 3])
    np.testing.assert_allclose(scores["pod"], [1 / 2, 2 / 3])
    np.testing.assert_allclose(scores["far"], [1 / 2, 0])
    # HSS = 2(HR - FM) / ((H+M)(M+R) + (H+F)(F+R))
    np.testing.assert_allclose(scores["hss"], [0.0, 2 * (2 - 0) / (3 * 2 + 2 * 1)])


def test_an_empty_contingency_table_gives_nan_not_a_crash():
    dry = torch.zeros((1, 1, 4))
    scores = skill_scores(contingency(dry, dry, 1.0))
    assert all(math.isnan(v[0]) for v in scores.values())
    assert math.isnan(summary({"csi@10": np.array([np.nan, np.nan])})["csi@10"])
    assert summary({"csi@10": np.array([np.nan, 0.5])})["csi@10"] == 0.5


def test_skill_keys_name_the_threshold():
    assert skill_key("csi", 10) == "csi@10"
    assert skill_key("pod", 0.5) == "pod@0.5"


def test_mismatched_shapes_are_reported():
    with pytest.raises(ShapeError, match="same shape"):
        frame_metrics(np.zeros((2, 1, 8, 8)), np.zeros((3, 1, 8, 8)))
    with pytest.raises(ShapeError, match="T,C,H,W"):
        frame_metrics(np.zeros((8, 8)), np.zeros((8, 8)))


def test_ssim_of_frames_smaller_than_its_window_is_nan():
    assert math.isnan(frame_metrics(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)))["ssim"][0])


def test_radar_skill_counts_rain_above_each_threshold_in_mm_per_hour():
    from mimviewer.data.units import rain_rate_to_unit

    rain_gt = np.zeros((1, 1, 8, 8))
    rain_gt[..., :4, :] = 12.0  # half the frame rains 12 mm/h
    rain_pred = np.zeros((1, 1, 8, 8))
    rain_pred[..., :2, :] = 12.0  # the forecast catches a quarter...
    rain_pred[..., 6:, :] = 3.0  # ...and drizzles where it is dry
    gt, pred = rain_rate_to_unit(rain_gt), rain_rate_to_unit(rain_pred)

    m = frame_metrics(gt, pred, units="dBZ", thresholds=(2, 10, 30))

    # at 10 mm/h: 16 hits, 16 misses, 0 false alarms, 32 correct negatives
    assert m["csi@10"][0] == pytest.approx(0.5)
    assert m["pod@10"][0] == pytest.approx(0.5)
    assert m["far@10"][0] == pytest.approx(0.0)
    assert m["hss@10"][0] == pytest.approx(2 * (16 * 32 - 0) / (32 * 48 + 16 * 32))
    # at 2 mm/h the drizzle (16 px) counts as false alarms
    assert m["far@2"][0] == pytest.approx(0.5)
    assert math.isnan(m["csi@30"][0])  # nobody saw 30 mm/h: undefined, not zero
    assert "csi@10" not in frame_metrics(gt, pred)  # intensity data: no radar skill
