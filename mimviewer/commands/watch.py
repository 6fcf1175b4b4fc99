"""``mimviewer watch FOLDER --checkpoint CKPT``: nowcast live as radar scans land in FOLDER.

In the window (File > Watch folder does the same) or, with ``--headless``, as files: every
forecast becomes ``forecast-YYYYmmddHHMM.gif`` (context + forecast, the future marked "not
observed yet") and ``forecast-YYYYmmddHHMM.npy`` (float32 (aft, C, H, W), model scale), and
``verification.json`` holds the running CSI/POD/FAR per lead; every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import numpy as np

from mimviewer.errors import MimviewerError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mimviewer.commands.predict import add_config_flags

    parser = subparsers.add_parser(
        "watch",
        help="nowcast live: forecast from every new radar scan in a folder, verify earlier forecasts",
        description="Follow FOLDER (HKO-7 RAD*.png, ODIM .h5, images with a time in their names). When a "
        "scan lands (file-system events, no polling) and is complete, forecast from the newest --pre "
        "scans and score the earlier forecasts that predicted its time (CSI/POD/FAR per lead). Scans "
        "that land out of order are sorted by time; a late one is used for context and verification.",
    )
    parser.add_argument("folder", help="the folder the scans land in")
    parser.add_argument(
        "--checkpoint", "-c", required=True, help="model checkpoint (.safetensors, .ckpt, .pth)"
    )
    parser.add_argument("--headless", action="store_true", help="no window: write each forecast as files")
    parser.add_argument(
        "--out", default="forecasts", help="--headless: folder for the files (default: ./forecasts)"
    )
    parser.add_argument("--pre", type=int, help="context scans (default: the checkpoint's)")
    parser.add_argument(
        "--aft", type=int, help="scans to predict (default: the checkpoint's; more runs on autoregressively)"
    )
    parser.add_argument(
        "--thresholds",
        default="0.5,2,5,10,30",
        help="thresholds for CSI/POD/FAR: rain rate in mm/h (model scale for non-radar images)",
    )
    parser.add_argument("--interval", type=float, help="minutes between scans (default: from their times)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds a file must stay unchanged to be read (default: 1)"
    )
    parser.add_argument(
        "--give-up", type=float, default=60.0, help="skip a file still incomplete after this many seconds"
    )
    parser.add_argument(
        "--max-forecasts", type=int, default=0, help="stop after this many forecasts (0: never)"
    )
    parser.add_argument(
        "--stop-after", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    parser.add_argument(
        "--no-initial",
        action="store_true",
        help="no forecast from the scans already in the folder at the start",
    )
    parser.add_argument("--fps", type=float, default=4, help="frames per second of the GIFs (default: 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="window: save the window after --max-forecasts forecasts, then exit",
    )
    add_config_flags(parser)
    parser.set_defaults(run=run)


def parse_thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise MimviewerError(f"--thresholds must be numbers separated by commas, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise MimviewerError(f"--thresholds must be one or more numbers >= 0, got {text!r}")
    return values


def check_args(args: argparse.Namespace) -> Path:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise MimviewerError(f"{folder}: not a folder")
    if args.settle <= 0 or args.give_up <= args.settle:
        raise MimviewerError("--settle must be > 0 and --give-up longer than --settle")
    if args.headless and args.screenshot:
        raise MimviewerError("--screenshot is for the window; --headless writes files")
    if args.interval is not None and args.interval <= 0:
        raise MimviewerError(f"--interval must be > 0 minutes, got {args.interval}")
    return folder


def load_model(args: argparse.Namespace, folder: Path, device):
    """The checkpoint, fitted to the scans' channels and frame size when the file does not say."""
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.commands.predict import config_overrides
    from mimviewer.errors import DataError, ShapeError
    from mimviewer.scans import read_scan
    from mimviewer.watch import existing_scans

    hints = {}
    for path in existing_scans(folder)[:1]:
        try:
            frame = read_scan(path).frame
        except DataError:
            break
        hints = {"channels": frame.shape[0], "frame_size": tuple(frame.shape[1:])}
    options = {"config_file": args.config, "overrides": config_overrides(args), "device": device}
    try:
        return load_checkpoint(args.checkpoint, **options, **hints)
    except ShapeError:  # the weights fix another frame size: scans are resized to it
        return load_checkpoint(args.checkpoint, **options, channels=hints.get("channels"))


def save_npy(path: Path, array: np.ndarray) -> None:
    """One atomic write of an array (:mod:`mimviewer.atomic`: the name stays exactly the one asked)."""
    from mimviewer.atomic import atomic_file

    with atomic_file(path) as f:
        np.save(f, array)


def write_forecast(out: Path, result, name: str, fps: float) -> list[Path]:
    """``forecast-YYYYmmddHHMM.gif`` and ``.npy`` of one result; returns the paths."""
    from mimviewer import export

    forecast = result.forecast
    plan = forecast.plan
    gif, npy = out / f"forecast-{result.stamp}.gif", out / f"forecast-{result.stamp}.npy"
    notes = [plan.frame_note(k) for k in range(plan.timeline_length)]
    units = result.scan.units if result.scan.units in ("intensity", "dBZ", "mm/h") else "intensity"
    export.write_comparison(
        gif,
        forecast.timeline_truth(),
        {name: forecast.prediction},
        pre=plan.pre,
        fps=fps,
        units=units,
        notes=notes,
    )
    save_npy(npy, forecast.prediction.astype(np.float32))
    return [gif, npy]


def describe(result) -> str:
    """One line per scan for the log."""
    text = f"{result.scan.label}: "
    if result.forecast is not None:
        plan = result.forecast.plan
        labels = plan.lead_labels()
        text += ("forecast from the scans already there" if result.initial else "forecast") + (
            f" {labels[0]} .. {labels[-1]}"
        )
    else:
        text += "no forecast"
    if result.verified:
        leads = ", ".join(f"{v.issued:%H:%M} at lead {v.lead}" for v in result.verified)
        text += f"; verified {len(result.verified)} earlier forecast(s) ({leads})"
    for note in result.notes:
        text += f"; {note}"
    return text


def run(args: argparse.Namespace) -> int:
    from mimviewer.inference import pick_device

    folder = check_args(args)
    thresholds = parse_thresholds(args.thresholds)
    pick_device(args.device)
    if not args.headless:
        return _run_window(args, folder, thresholds)
    return run_headless(args, folder, thresholds)


def run_headless(args: argparse.Namespace, folder: Path, thresholds: tuple[float, ...]) -> int:
    from mimviewer.inference import pick_device
    from mimviewer.watch import Nowcaster, nowcast_folder

    device = pick_device(args.device)
    loaded = load_model(args, folder, device)
    out = Path(args.out)
    nowcaster = Nowcaster(
        loaded.model,
        pre=args.pre,
        aft=args.aft,
        thresholds=thresholds,
        frame_interval_s=args.interval * 60 if args.interval else None,
        device=device,
    )
    name = Path(args.checkpoint).stem
    stop = threading.Event()
    timer = threading.Timer(args.stop_after, stop.set) if args.stop_after > 0 else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    print(
        f"watching {folder} with {name} ({loaded.config.arch}, {nowcaster.pre} -> {nowcaster.aft}); "
        f"forecasts go to {out}; Ctrl-C stops",
        flush=True,
    )
    forecasts = 0
    try:
        for item in nowcast_folder(
            folder,
            nowcaster,
            stop_event=stop,
            settle_s=args.settle,
            give_up_s=args.give_up,
            initial_forecast=not args.no_initial,
        ):
            if isinstance(item, str):
                print(f"  {item}", file=sys.stderr, flush=True)
                continue
            line = describe(item)
            if item.forecast is not None:
                written = write_forecast(out, item, name, args.fps)
                forecasts += 1
                line += f" -> {written[0]}"
            if item.verified or item.forecast is not None:
                write_verification(out / "verification.json", nowcaster, item)
            print(line, flush=True)
            if args.max_forecasts and forecasts >= args.max_forecasts:
                stop.set()
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
    print(f"stopped after {forecasts} forecast(s)")
    return 0


def write_verification(path: Path, nowcaster, result) -> None:
    from mimviewer.atomic import write_text
    from mimviewer.forecast import lead_label

    labels = [lead_label(lead, nowcaster.interval_s) for lead in range(1, nowcaster.aft + 1)]
    document = nowcaster.verification.to_json(labels)
    document["latest_scan"] = result.scan.path.name
    write_text(path, json.dumps(document, indent=1) + "\n")


def _run_window(args: argparse.Namespace, folder: Path, thresholds: tuple[float, ...]) -> int:
    """The window follows the folder (File > Watch folder); ``--screenshot`` saves it after
    ``--max-forecasts`` forecasts (default 1) and exits."""
    from PySide6.QtCore import QEventLoop, QTimer

    from mimviewer.inference import pick_device
    from mimviewer.ui.app import SCREENSHOT_SIZE, application, choose_device, has_display, save_screenshot
    from mimviewer.ui.main_window import MainWindow

    if args.screenshot is None and not has_display():
        raise MimviewerError("no display found: pass --headless (files) or --screenshot PNG (offscreen)")
    loaded = load_model(args, folder, pick_device(args.device))  # config flags apply here too
    app = application()
    window = MainWindow()
    if args.screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    choose_device(window, args.device)
    window.session.set_model(loaded.model, name=Path(args.checkpoint).name, source=str(args.checkpoint))
    window.session.set_forecast(context=args.pre, horizon=args.aft)
    interval = args.interval * 60 if args.interval else None
    if not window.watch_folder(
        folder, thresholds=thresholds, settle_s=args.settle, give_up_s=args.give_up, frame_interval_s=interval
    ):
        return 2
    if args.screenshot is None:
        return app.exec()
    wanted = args.max_forecasts or 1
    loop, status = QEventLoop(), {"code": 0, "done": False}

    def finish() -> None:
        if status["done"]:
            return
        status["done"] = True
        live = window.live
        if live is None or live.forecasts < wanted:
            print("mimviewer: error: " + ("; ".join(window.errors) or "too few forecasts"), file=sys.stderr)
            status["code"] = 2
        else:
            session = window.session
            session.frame = min(session.pre + 1, session.timeline_length - 1)
            print(f"wrote {save_screenshot(window, args.screenshot)}")
        window.close()
        loop.quit()

    def check(ok: bool) -> None:
        if window.live is not None and window.live.forecasts >= wanted:
            window.runner.finished.disconnect(check)
            QTimer.singleShot(300, finish)

    window.runner.finished.connect(check)
    if args.stop_after > 0:
        QTimer.singleShot(int(args.stop_after * 1000), finish)
    loop.exec()
    return status["code"]
