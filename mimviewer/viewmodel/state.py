"""A view state file (``.mimviewer.json``): what is open and how it is shown, to come back to.

It names the inputs (the sequence, or the bundled demo), the checkpoints (main and
compared), and the settings: frame, window start (context / horizon / now of a forecast),
quantities, reduction, saturation thresholds, channel, zoom, each view's colour map and
levels, and the theme. Paths are stored as given and relative to the state file, so that
a folder moved as a whole still opens; a file that is in neither place is one clear line
naming the state file, the role of the file and where it was expected.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mimviewer.errors import MimviewerError
from mimviewer.viewmodel.display import COLOUR_MAPS, LEVEL_MODES, THEMES, ViewDisplay
from mimviewer.viewmodel.readout import REDUCTIONS

if TYPE_CHECKING:
    from mimviewer.viewmodel.session import Session

SUFFIX = ".mimviewer.json"
FORMAT = "mimviewer-view-state"
VERSION = 1
MAX_BYTES = 1 << 20  # a view state is a few kB; anything bigger is not one


class StateError(MimviewerError):
    """A view state file that cannot be read or opened (the message names the file)."""


@dataclass
class ViewState:
    """Everything a view state file holds (see the module docstring)."""

    sequence: str | None = None  # path of the sequence file (None: the demo, or nothing)
    demo: bool = False
    checkpoints: list[str | None] = field(default_factory=lambda: [None, None])  # main, compared
    fit: str = "resize"
    frame: int = 0
    context: int | None = None
    horizon: int | None = None
    now: int | None = None
    quantities: list[str] = field(default_factory=list)
    reduction: str = "mean"
    thresholds: tuple[float, float] = (0.1, 0.9)
    channel: int = 0
    zoom: tuple[float, float, float, float] | None = None  # x, y, width, height in frame pixels
    display: dict[str, dict[str, Any]] = field(default_factory=dict)  # view -> ViewDisplay fields
    linked: bool = False
    theme: str = "system"
    base: Path | None = None  # the state file's folder (not saved): relative paths start here

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("base")
        return json.dumps({"format": FORMAT, "version": VERSION, **data}, indent=2) + "\n"


def capture(session: Session, theme: str | None = None) -> ViewState:
    """The session's state now."""
    checkpoints: list[str | None] = [None, None]
    for index in (0, 1):
        slot = session.slots[index]
        if slot is not None and slot.source and Path(slot.source).is_file():
            checkpoints[index] = str(Path(slot.source).resolve())
    sequence = session.sequence_path
    return ViewState(
        sequence=str(Path(sequence).resolve()) if sequence else None,
        demo=session.origin == "demo",
        checkpoints=checkpoints,
        fit=session.fit,
        frame=session.frame,
        context=session.context,
        horizon=session.horizon,
        now=session.now_index,
        quantities=session.quantities,
        reduction=session.reduction,
        thresholds=session.thresholds,
        channel=session.channel,
        zoom=session.zoom,
        display={view: session.display(view).to_json() for view in session.view_names()},
        linked=session.linked,
        theme=theme or session.theme,
    )


def write_state(session: Session, path: str | Path) -> Path:
    """Save the session's state; paths are also stored relative to the file's folder."""
    from mimviewer.atomic import write_text

    path = Path(path)
    state = capture(session)
    folder = path.resolve().parent
    data = json.loads(state.to_json())
    data["relative"] = {
        "sequence": _relative(state.sequence, folder),
        "checkpoints": [_relative(c, folder) for c in state.checkpoints],
    }
    return write_text(path, json.dumps(data, indent=2) + "\n")


def _relative(path: str | None, folder: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return None


def read_state(path: str | Path) -> ViewState:
    """Read and check a view state file; StateError (one line naming the file) when it is not one,
    or when a file it names is neither where it was nor beside the state file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise StateError(f"{path}: too big for a view state ({path.stat().st_size} bytes)")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StateError(f"{path}: no such view state file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{path}: not a readable view state file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f'{path}: not a mimviewer view state (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise StateError(
            f"{path}: view state version {data.get('version')!r}; this mimviewer reads {VERSION}"
        )
    try:
        state = _parse(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise StateError(f"{path}: {exc}") from exc
    state.base = path.resolve().parent
    relative = data.get("relative") if isinstance(data.get("relative"), dict) else {}
    if state.sequence is not None:
        state.sequence = _locate(path, "sequence", state.sequence, relative.get("sequence"))
    rel_checkpoints = relative.get("checkpoints") or [None, None]
    for index, role in enumerate(("checkpoint", "compared checkpoint")):
        if state.checkpoints[index] is not None:
            state.checkpoints[index] = _locate(
                path,
                role,
                state.checkpoints[index],
                rel_checkpoints[index] if index < len(rel_checkpoints) else None,
            )
    return state


def _locate(state_file: Path, role: str, stored: str, relative: str | None) -> str:
    """Where a referenced file is now: where it was, else beside the state file as it was then."""
    if Path(stored).is_file():
        return stored
    if relative is not None:
        moved = state_file.resolve().parent / relative
        if moved.is_file():
            return str(moved)
    raise StateError(
        f"{state_file}: the {role} it names, {stored}, is not there any more (moved or deleted?)"
        + (f"; not beside the state file either ({relative})" if relative else "")
    )


def _parse(data: dict[str, Any]) -> ViewState:
    """Check every field's type and range (ValueError naming the field)."""

    def optional_int(name: str) -> int | None:
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{name} must be a whole number or null, got {value!r}")
        return value

    def text_or_none(name: str, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a path or null, got {value!r}")
        return value

    checkpoints = data.get("checkpoints", [None, None])
    if not isinstance(checkpoints, list) or len(checkpoints) != 2:
        raise ValueError("checkpoints must be a list [main, compared]")
    reduction = data.get("reduction", "mean")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
    thresholds = data.get("thresholds", [0.1, 0.9])
    if (
        not isinstance(thresholds, list)
        or len(thresholds) != 2
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in thresholds)
        or not 0 <= thresholds[0] < thresholds[1] <= 1
    ):
        raise ValueError(f"thresholds must be [lo, hi] with 0 <= lo < hi <= 1, got {thresholds!r}")
    zoom = data.get("zoom")
    if zoom is not None and (
        not isinstance(zoom, list)
        or len(zoom) != 4
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in zoom)
        or zoom[2] <= 0
        or zoom[3] <= 0
    ):
        raise ValueError(f"zoom must be [x, y, width, height] with a positive size, got {zoom!r}")
    display = data.get("display", {})
    if not isinstance(display, dict):
        raise ValueError("display must map views to colour map and levels")
    for view, shown in display.items():
        if not isinstance(shown, dict):
            raise ValueError(f"display of {view!r} must be an object")
        ViewDisplay(**shown)  # unknown keys are a TypeError
        if shown.get("colour_map") not in COLOUR_MAPS or shown.get("levels", "full") not in LEVEL_MODES:
            raise ValueError(f"display of {view!r}: unknown colour map or levels ({shown})")
    quantities = data.get("quantities", [])
    if not isinstance(quantities, list) or not all(isinstance(q, str) for q in quantities):
        raise ValueError("quantities must be a list of names")
    theme = data.get("theme", "system")
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; known: {', '.join(THEMES)}")
    frame = optional_int("frame") or 0
    channel = optional_int("channel") or 0
    return ViewState(
        sequence=text_or_none("sequence", data.get("sequence")),
        demo=bool(data.get("demo", False)),
        checkpoints=[text_or_none("checkpoints", c) for c in checkpoints],
        fit=str(data.get("fit", "resize")),
        frame=max(frame, 0),
        context=optional_int("context"),
        horizon=optional_int("horizon"),
        now=optional_int("now"),
        quantities=list(quantities),
        reduction=reduction,
        thresholds=(float(thresholds[0]), float(thresholds[1])),
        channel=max(channel, 0),
        zoom=None if zoom is None else tuple(float(v) for v in zoom),
        display={view: dict(shown) for view, shown in display.items()},
        linked=bool(data.get("linked", False)),
        theme=theme,
    )


def apply_settings(session: Session, state: ViewState) -> None:
    """After the files are open: quantities, reduction, thresholds, display, frame and zoom."""
    if state.quantities:
        session.quantities = state.quantities
    session.reduction = state.reduction
    session.set_thresholds(*state.thresholds)
    session.channel = state.channel
    session.linked = False
    for view, shown in state.display.items():
        if view in session.view_names():
            session.set_display(view, **{k: tuple(v) if k == "fixed" else v for k, v in shown.items()})
    session.linked = state.linked
    session.theme = state.theme
    session.frame = state.frame
    session.zoom = state.zoom
    session.events.zoom.emit()
