"""Live nowcasting: complete files only, time order, one forecast per scan, running verification."""

import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from mimviewer.data.synthetic import radar_storms
from mimviewer.scans import looks_complete, name_time, read_scan, scan_time
from mimviewer.watch import Nowcaster, NowcastResult, PendingFiles, Verification, nowcast_folder
from tests.scan_helpers import AFT, SETTLE, SIZE, STEP, T0, scan_bytes, scan_name, tiny_model


@pytest.fixture(scope="module")
def storm():
    return radar_storms(1, length=8, size=SIZE, seed=4)[0]  # (8, 1, 16, 16) dBZ


def test_scan_times_from_names():
    assert name_time("RAD240601120600.png") == datetime(2024, 6, 1, 12, 6)
    assert name_time("radar_20240601_1230.png") == datetime(2024, 6, 1, 12, 30)
    assert name_time("x20240601T123015.h5") == datetime(2024, 6, 1, 12, 30, 15)
    assert name_time("frame0001.png") is None and name_time("20241301_1230.png") is None


def test_a_half_written_scan_waits_until_complete(tmp_path, storm):
    data = scan_bytes(storm[0])
    path = tmp_path / scan_name(0)
    path.write_bytes(data[: len(data) // 2])
    clock = [0.0]
    pending = PendingFiles(settle_s=1.0, give_up_s=10.0, clock=lambda: clock[0])

    pending.notice(path)
    clock[0] = 5.0  # quiet for long, but no PNG end: not complete
    assert pending.take_ready() == ([], []) and not looks_complete(path)
    path.write_bytes(data)
    pending.notice(path)
    clock[0] = 5.5
    assert pending.take_ready() == ([], [])  # complete, but changed 0.5 s ago
    clock[0] = 6.1
    assert pending.take_ready() == ([path], [])
    assert read_scan(path).frame.shape == (1, SIZE, SIZE)


def test_a_file_that_never_completes_is_skipped_and_said_so(tmp_path, storm):
    path = tmp_path / scan_name(0)
    path.write_bytes(scan_bytes(storm[0])[:40])
    clock = [0.0]
    pending = PendingFiles(settle_s=1.0, give_up_s=10.0, clock=lambda: clock[0])
    pending.notice(path)
    clock[0] = 10.5
    ready, messages = pending.take_ready()
    assert ready == [] and len(messages) == 1 and path.name in messages[0] and "10 s" in messages[0]


def test_scans_landing_together_come_out_together(tmp_path, storm):
    later, earlier = tmp_path / scan_name(5), tmp_path / scan_name(4)
    later.write_bytes(scan_bytes(storm[5]))
    clock = [0.0]
    pending = PendingFiles(settle_s=1.0, clock=lambda: clock[0])
    pending.notice(later)
    clock[0] = 0.6
    earlier.write_bytes(scan_bytes(storm[4]))
    pending.notice(earlier)
    clock[0] = 1.2  # the later scan is quiet, the earlier one still settling: hold both
    assert pending.take_ready() == ([], [])
    clock[0] = 1.7
    assert sorted(pending.take_ready()[0]) == sorted([later, earlier])


def _arrive_all(nowcaster: Nowcaster, folder: Path, order: list[int], storm) -> list[NowcastResult]:
    results = []
    for k in order:
        path = folder / scan_name(k)
        path.write_bytes(scan_bytes(storm[k]))
        results.append(nowcaster.arrive(nowcaster.read(path)))
    return results


def test_forecasts_from_each_new_scan_and_late_scans_are_said(tmp_path, storm):
    nowcaster = Nowcaster(tiny_model(), thresholds=(0.5, 2.0))
    results = _arrive_all(nowcaster, tmp_path, [0, 1, 2, 3, 5, 4], storm)

    assert [r.forecast is not None for r in results] == [False, False, True, True, True, False]
    assert "waiting for context: 1 of 3" in results[0].notes[0]
    assert any("gap in the context: 1 scan(s) missing" in n for n in results[4].notes)
    assert any(n.startswith("late: " + scan_name(4)) for n in results[5].notes)
    first = results[2].forecast
    assert first.plan.now_time == T0 + 2 * STEP and first.plan.lead_labels() == ["+6 min", "+12 min"]
    assert first.plan.valid_time(1) == T0 + 3 * STEP
    assert [s.path.name for s in nowcaster.history] == [scan_name(k) for k in range(6)]
    # The late 12:24 scan still verifies the 12:12 (lead 2) and 12:18 (lead 1) forecasts.
    assert sorted((v.issued, v.lead) for v in results[5].verified) == [(T0 + 2 * STEP, 2), (T0 + 3 * STEP, 1)]


def _rain(unit: np.ndarray) -> np.ndarray:
    """Model scale -> mm/h written out: dBZ = 70 u - 10, Z = 10^(dBZ/10), R = (Z/200)^(1/1.6)."""
    dbz = np.clip(unit.astype(np.float64), 0, 1) * 70.0 - 10.0
    return (10.0 ** (dbz / 10.0) / 200.0) ** (1.0 / 1.6)


def test_the_verification_curve_equals_the_scores_by_hand(tmp_path, storm):
    thresholds = (0.5, 2.0, 5.0)
    nowcaster = Nowcaster(tiny_model(), thresholds=thresholds)
    results = _arrive_all(nowcaster, tmp_path, list(range(8)), storm)

    forecasts = {r.scan.time: r.forecast for r in results if r.forecast is not None}
    scans = {r.scan.time: r.scan.frame for r in results}
    by_hand = {}
    for threshold in thresholds:
        counts = np.zeros((AFT, 3))  # hits, misses, false alarms per lead
        for issued, forecast in forecasts.items():
            for lead in (1, 2):
                truth = scans.get(issued + lead * STEP)
                if truth is None:
                    continue
                seen, said = _rain(truth) > threshold, _rain(forecast.prediction[lead - 1]) > threshold
                counts[lead - 1] += [(seen & said).sum(), (seen & ~said).sum(), (~seen & said).sum()]
        h, m, f = counts.T
        with np.errstate(invalid="ignore", divide="ignore"):
            by_hand[f"csi@{threshold:g}"] = h / (h + m + f)
            by_hand[f"pod@{threshold:g}"] = h / (h + m)
            by_hand[f"far@{threshold:g}"] = f / (h + f)

    curve = nowcaster.verification.scores()
    assert nowcaster.verification.pairs.tolist() == [
        5,
        4,
    ]  # forecasts from 2..6 verified at lead 1, 2..5 at 2
    assert set(curve) == set(by_hand)
    for name, values in by_hand.items():
        np.testing.assert_allclose(curve[name], values, rtol=1e-12, equal_nan=True)
    assert np.isfinite(curve["pod@0.5"]).all()  # the storm has rain above 0.5 mm/h: real numbers


def test_verification_without_pairs_is_absent_not_zero():
    verification = Verification(3, (1.0,))
    verification.add(1, np.full((1, 4, 4), 0.6), np.full((1, 4, 4), 0.6))
    scores = verification.scores()
    assert scores["csi@1"][0] == 1.0 and np.isnan(scores["csi@1"][1:]).all()


@pytest.mark.timeout(60)
def test_a_watched_folder_forecasts_once_per_complete_scan_in_time_order(tmp_path, storm):
    """Files land one by one; one is half-written for a while, two land out of order."""
    stop = threading.Event()
    nowcaster = Nowcaster(tiny_model(), thresholds=(0.5,))

    def writer():
        time.sleep(0.3)  # let the watcher start
        for k in (0, 1, 2):
            (tmp_path / scan_name(k)).write_bytes(scan_bytes(storm[k]))
            time.sleep(3 * SETTLE)
        data = scan_bytes(storm[3])
        with (tmp_path / scan_name(3)).open("wb") as f:  # half-written, then finished
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(4 * SETTLE)
            f.write(data[len(data) // 2 :])
        time.sleep(3 * SETTLE)
        (tmp_path / scan_name(5)).write_bytes(scan_bytes(storm[5]))  # out of order
        (tmp_path / scan_name(4)).write_bytes(scan_bytes(storm[4]))
        (tmp_path / "notes.txt").write_text("not a scan")

    thread = threading.Thread(target=writer, daemon=True)
    fired = []
    guard = threading.Timer(40, lambda: (fired.append(True), stop.set()))  # never hang
    thread.start()
    guard.start()
    results, messages = [], []
    try:
        for item in nowcast_folder(tmp_path, nowcaster, stop_event=stop, settle_s=SETTLE):
            (messages if isinstance(item, str) else results).append(item)
            if sum(r.forecast is not None for r in results) == 4:
                stop.set()
    finally:
        guard.cancel()
        stop.set()
        thread.join(5)

    assert not fired and len(results) == 6, (results, messages)
    times = [r.scan.time for r in results]
    assert times == [T0 + k * STEP for k in range(6)]  # every scan once, in time order
    forecasts = [r.forecast.plan.now_time for r in results if r.forecast is not None]
    assert forecasts == [T0 + k * STEP for k in (2, 3, 4, 5)]
    assert not any("late" in n for r in results for n in r.notes) and messages == []
    assert read_scan(tmp_path / scan_name(3)).frame.shape == (1, SIZE, SIZE)
    assert scan_time(tmp_path / scan_name(3)) == T0 + 3 * STEP


def test_an_odim_scan_has_its_time_and_units(tmp_path):
    from tests.data.test_readers import write_odim

    raw = np.full((8, 8), 124, np.uint8)  # 124 * 0.5 - 32 = 30 dBZ
    write_odim(tmp_path / "scan.h5", [raw], ["101500"])
    scan = read_scan(tmp_path / "scan.h5", size=(4, 4))
    assert scan.time == datetime(2024, 5, 1, 10, 15) and scan.units == "dBZ"
    assert scan.frame.shape == (1, 4, 4) and "resized 8x8 -> 4x4" in scan.notes[0]
    np.testing.assert_allclose(scan.frame, (30 + 10) / 70, atol=1e-6)
