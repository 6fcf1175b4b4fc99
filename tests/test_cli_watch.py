"""``mimviewer watch --headless``: one forecast (GIF + .npy, written atomically) per scan that lands."""

import json
import threading
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.data.synthetic import radar_storms
from mimviewer.forecast import plan_forecast, run_forecast
from mimviewer.scans import read_scan
from tests.scan_helpers import AFT, PRE, SIZE, STEP, T0, scan_bytes, scan_name, tiny_model


@pytest.mark.timeout(90)
def test_watch_headless_writes_one_forecast_per_scan(tmp_path, capsys):
    feed, out = tmp_path / "feed", tmp_path / "out"
    feed.mkdir()
    model = tiny_model()
    save_checkpoint(tmp_path / "m.safetensors", model)
    storm = radar_storms(1, length=6, size=SIZE, seed=4)[0]
    for k in (0, 1):  # already there: fewer than the 3 context scans, no forecast yet
        (feed / scan_name(k)).write_bytes(scan_bytes(storm[k]))

    def writer():
        time.sleep(1.0)
        for k in (2, 3, 4):
            (feed / scan_name(k)).write_bytes(scan_bytes(storm[k]))
            time.sleep(1.0)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    code = main(
        ["watch", str(feed), "-c", str(tmp_path / "m.safetensors"), "--headless", "--out", str(out),
         "--settle", "0.2", "--max-forecasts", "3", "--stop-after", "60", "--thresholds", "0.5,5",
         "--device", "cpu"]
    )  # fmt: skip
    thread.join(5)

    assert code == 0
    stamps = [f"{T0 + k * STEP:%Y%m%d%H%M}" for k in (2, 3, 4)]
    assert sorted(p.name for p in out.glob("forecast-*")) == sorted(
        f"forecast-{s}.{ext}" for s in stamps for ext in ("gif", "npy")
    )
    assert not list(out.glob(".*"))  # no temporary files left behind
    for k, stamp in zip((2, 3, 4), stamps, strict=True):
        prediction = np.load(out / f"forecast-{stamp}.npy")
        context = np.stack([read_scan(feed / scan_name(j)).frame for j in range(k - 2, k + 1)])
        expected = run_forecast(model, context, plan_forecast(PRE, PRE, AFT)).prediction
        np.testing.assert_array_equal(prediction, expected)
        assert len(imageio.mimread(out / f"forecast-{stamp}.gif")) == PRE + AFT
    verification = json.loads((out / "verification.json").read_text())
    assert verification["pairs"] == [2, 1]  # 12:12 verified at +6 and +12 min, 12:18 at +6 min
    assert verification["lead"] == ["+6 min", "+12 min"] and "csi@5" in verification["scores"]
    log = capsys.readouterr().out
    assert "stopped after 3 forecast(s)" in log and "verified 2 earlier forecast(s)" in log


def test_watch_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    code = main(["watch", str(tmp_path / "nope"), "-c", "x.safetensors", "--headless"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and err.count("\n") == 1
