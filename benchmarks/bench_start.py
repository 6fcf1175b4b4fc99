"""Start-up time: launch to window shown, to engine loaded, to first predicted frame, to finished.

Each repeat launches ``python -m mimviewer demo --screenshot PNG`` as a new process
(offscreen, one torch thread) with ``$MIMVIEWER_TIMING`` set; the window appends an event
with its wall-clock time when it is first painted ("shown"), when torch and the engine are
imported in the background ("engine"), when the first network step's prediction has been
handed to the views ("first prediction") and the process ends after inference
("finished"). Times are from just before the launch. In the same run, as baselines: a
bare PySide6 program that shows an empty QMainWindow (the least any Qt window costs), and
``python -c "import torch"`` (what importing torch alone costs). Medians of ``--repeats``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_start.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE_WINDOW = (
    "import time, sys\n"
    "from PySide6.QtWidgets import QApplication, QMainWindow\n"
    "app = QApplication([]); w = QMainWindow(); w.resize(1600, 1000); w.show(); app.processEvents()\n"
    "print(time.time())\n"
)


def environment(timing: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    env["MIMVIEWER_CONFIG_DIR"] = str(Path(tempfile.gettempdir()) / "mimviewer-bench-start")
    if timing is not None:
        env["MIMVIEWER_TIMING"] = str(timing)
    return env


def launch_demo(folder: Path) -> dict[str, float]:
    timing = folder / "timing.jsonl"
    timing.unlink(missing_ok=True)
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "mimviewer", "demo", "--screenshot", str(folder / "demo.png")],
        cwd=REPO,
        env=environment(timing),
        capture_output=True,
        text=True,
        check=False,
    )
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"mimviewer demo failed ({done.returncode}): {done.stderr.strip()}")
    events = {}
    for line in timing.read_text().splitlines():
        record = json.loads(line)
        events.setdefault(record["event"], record["time"] - start)
    events["finished"] = end - start
    return events


def launch_bare() -> float:
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-c", BARE_WINDOW], env=environment(), capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1]) - start


def launch_torch() -> float:
    start = time.time()
    subprocess.run([sys.executable, "-c", "import torch"], env=environment(), check=True)
    return time.time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved, so that machine load hits all alike
            for name, value in launch_demo(Path(tmp)).items():
                runs.setdefault(name, []).append(value)
            runs.setdefault("bare Qt window shown", []).append(launch_bare())
            runs.setdefault("import torch alone", []).append(launch_torch())
    median = {name: statistics.median(values) for name, values in runs.items()}
    bare = median["bare Qt window shown"]
    print(f"mimviewer demo, offscreen, {args.repeats} launches, median seconds from launch")
    for name in (
        "shown",
        "engine",
        "first_prediction",
        "finished",
        "bare Qt window shown",
        "import torch alone",
    ):
        if name in median:
            spread = f"{min(runs[name]):.2f}–{max(runs[name]):.2f}"
            ratio = median[name] / bare
            print(f"{name.replace('_', ' '):22s} {median[name]:6.2f} s  ({spread})  {ratio:5.2f}x bare")


if __name__ == "__main__":
    main()
