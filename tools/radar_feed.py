"""Play a radar feed into a folder: HKO-7 ``RADyymmddHHMMSS.png`` scans of synthetic storms, one
every few seconds, for trying ``mimviewer watch`` (and for the live screenshot in the README)::

    python tools/radar_feed.py FEED --first 0 --last 9                # ten scans at once
    python tools/radar_feed.py FEED --first 10 --last 13 --every 15   # then one every 15 s

Scan k is frame k of ``radar_storms(1, length=24, seed=SEED)`` at 12:00 + 6 min * k on
2024-06-01. Each file is written under a hidden name and renamed into place, as a feed that
writes atomically does (``--torn`` writes half, waits, then the rest, as one that does not).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from mimviewer.data.synthetic import radar_storms
from mimviewer.data.units import dbz_to_hko_pixel

START = datetime(2024, 6, 1, 12, 0)
STEP = timedelta(minutes=6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--last", type=int, default=9)
    parser.add_argument("--every", type=float, default=0.0, help="seconds between scans")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--torn", action="store_true", help="write each file in two halves, 2 s apart")
    args = parser.parse_args()
    if not 0 <= args.first <= args.last < 24:
        parser.error("need 0 <= --first <= --last < 24")
    storm = radar_storms(1, length=24, size=args.size, seed=args.seed)[0]
    args.folder.mkdir(parents=True, exist_ok=True)
    for k in range(args.first, args.last + 1):
        pixels = np.clip(np.rint(dbz_to_hko_pixel(storm[k, 0])), 0, 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".png", pixels)
        if not ok:
            raise SystemExit("could not encode a PNG")
        data = encoded.tobytes()
        name = args.folder / f"RAD{START + k * STEP:%y%m%d%H%M%S}.png"
        if args.torn:
            with name.open("wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                time.sleep(2.0)
                f.write(data[len(data) // 2 :])
        else:
            hidden = args.folder / f".{name.name}.part"
            hidden.write_bytes(data)
            hidden.rename(name)
        print(f"landed {name.name}", flush=True)
        if k < args.last:
            time.sleep(args.every)


if __name__ == "__main__":
    main()
