"""`mimviewer demo`: the window on the bundled demo model and its synthetic sequence.

Without a display (Linux, no DISPLAY / WAYLAND_DISPLAY) the window is rendered offscreen
into ``mimviewer-demo.png`` in the current folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mimviewer.commands.view import add_window_options
from mimviewer.errors import MimviewerError

HEADLESS_SCREENSHOT = "mimviewer-demo.png"


@dataclass
class Demo:
    frames: np.ndarray  # (T, C, H, W) model scale
    units: str
    source: str
    model: Any  # RecurrentModel
    model_name: str
    model_source: str


def _generate(data: dict[str, Any]) -> tuple[np.ndarray, str, str]:
    """Frames of the demo's generator in model scale, their units and a description."""
    from mimviewer.data import synthetic, units

    name = str(data.get("generator", "bouncing_digits"))
    seed = int(data.get("seed", 0))
    length = int(data.get("length", 20))
    size = int(data.get("size", 64))
    if name in ("radar_storms", "storms"):
        dbz = synthetic.radar_storms(1, length=length, size=size, seed=seed)[0]
        return units.dbz_to_unit(dbz).astype(np.float32), "dBZ", f"synthetic radar storms (seed {seed})"
    if name not in ("bouncing_digits", "digits"):
        raise MimviewerError(f"models/demo.json names an unknown generator {name!r}")
    frames = synthetic.bouncing_digits(1, length=length, size=size, seed=seed)[0]
    return frames, "intensity", f"synthetic bouncing digits (seed {seed})"


def demo_files() -> tuple[dict[str, Any], Path]:
    """The demo's spec (models/demo.json) and model file; MimviewerError when either is missing."""
    from mimviewer.paths import bundled_models_dir

    folder = bundled_models_dir()
    spec_path = folder / "demo.json"
    if not spec_path.is_file():
        raise MimviewerError(f"{spec_path}: the bundled demo is missing; the installation is incomplete")
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as exc:
        raise MimviewerError(f"{spec_path}: not valid JSON ({exc})") from exc
    model_file = folder / str(spec.get("model", ""))
    if model_file.suffix != ".safetensors":
        model_file = model_file.with_suffix(".safetensors")
    if not model_file.is_file():
        raise MimviewerError(
            f"{model_file}: the bundled demo model named in {spec_path.name} is missing; "
            "the installation is incomplete"
        )
    return spec, model_file


def load_demo() -> Demo:
    """The bundled demo (models/demo.json and the model it names).

    Either missing is an incomplete installation: refused with one line, never replaced by a
    model with random weights (which would look like a working demo)."""
    from mimviewer.checkpoints import load_checkpoint

    spec, model_file = demo_files()
    data = spec.get("data", spec)
    frames, units, source = _generate(data if isinstance(data, dict) else {"generator": data})
    loaded = load_checkpoint(model_file)
    return Demo(frames, units, source, loaded.model, model_file.name, str(model_file))


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="open the window on the bundled demo model and sequence",
        description="Open the window on the bundled demo model and sequence, inference started. "
        f"Without a display, renders it offscreen into ./{HEADLESS_SCREENSHOT}.",
    )
    add_window_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimviewer.ui.app import choose_device, has_display, run_window

    if args.device != "auto":  # a device that cannot work is an error before any window opens
        from mimviewer.inference import pick_device

        pick_device(args.device)
    demo_files()  # a missing demo is one line before any window opens
    if args.delta_eps is not None:
        from mimviewer.viewmodel.delta import check_eps

        check_eps(args.delta_eps)
    screenshot = args.screenshot
    if screenshot is None and not has_display():
        screenshot = str(Path.cwd() / HEADLESS_SCREENSHOT)
        print(
            f"mimviewer: no display found: rendering the window offscreen into {screenshot}", file=sys.stderr
        )

    def setup(window, demo: Demo) -> None:
        choose_device(window, args.device)
        window.runner.fast = args.fast
        open_demo(window, demo, delta_eps=args.delta_eps)

    # The window shows first; torch, the model and the frames load behind it.
    return run_window(setup, screenshot=screenshot, load=load_demo)


def open_demo(window, demo: Demo, *, delta_eps: float | None = None) -> None:
    """Load the demo into a window's session and start inference (also used by the tests);
    ``delta_eps``: with the delta inference row at that threshold."""
    show_demo(window.session, demo)
    if delta_eps is not None:
        window.session.set_delta(delta_eps)
    window.runner.start()


def show_demo(session, demo: Demo) -> None:
    """Put the demo's frames and model into a session (no inference yet)."""
    from mimviewer.data import units as units_module

    to_physical = units_module.unit_to_dbz if demo.units == "dBZ" else None
    session.set_sequence(demo.frames, units=demo.units, source=demo.source, to_physical=to_physical)
    session.set_model(demo.model, name=demo.model_name, source=demo.model_source)
    session.origin = "demo"
