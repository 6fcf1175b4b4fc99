"""What if the past had been different? Edits of context frames, kept as an undoable list.

An edit is a small frozen dataclass that changes one context frame (frames count from 0,
pixel coordinates x = column, y = row, values in the model scale [0, 1]):

* :class:`Erase` / :class:`Paint`: a brush stroke (discs of ``radius`` pixels along the points)
  sets the pixels to 0 / to ``value``;
* :class:`MoveBlob`: the connected blob of pixels >= ``threshold`` that holds (x, y) moves by
  (dx, dy); where it was becomes 0;
* :class:`Shift`: the whole frame moves by (dx, dy), the uncovered border becomes 0;
* :class:`Scale`: the whole frame's values times ``intensity`` (clipped to [0, 1]) and/or
  zoomed by ``zoom`` about its centre;
* :class:`CopyFrame`: the frame becomes a copy of frame ``source`` (as edited so far).

Edits apply in order to a copy of the context; the original is never changed. An
:class:`EditList` holds them with undo/redo and round-trips through JSON (``kind`` names the
edit), so the window can save them with its state and ``mimviewer whatif`` can replay them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from mimviewer.errors import DataError

FORMAT_VERSION = 1


class WhatIfError(DataError):
    """An edit that does not fit the context (frame out of range, no blob there) or a bad edits file."""


@dataclass(frozen=True)
class Edit:
    """Base of every edit: which context frame it changes."""

    kind: ClassVar[str] = ""
    frame: int

    def apply(self, context: np.ndarray) -> None:
        """Change ``context`` (T, C, H, W) in place."""
        raise NotImplementedError

    def describe(self) -> str:
        """One short line, e.g. "erase frame 8 (12 points, radius=3.0)"."""
        fields = ", ".join(
            f"{len(self.points)} points" if f.name == "points" else f"{f.name}={getattr(self, f.name)}"  # type: ignore[attr-defined]
            for f in dataclasses.fields(self)[1:]
        )
        return f"{self.kind} frame {self.frame}" + (f" ({fields})" if fields else "")

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, **dataclasses.asdict(self)}
        return {k: [list(p) for p in v] if k == "points" else v for k, v in d.items()}


def brush_mask(height: int, width: int, points: Sequence[tuple[float, float]], radius: float) -> np.ndarray:
    """(H, W) bool: discs of ``radius`` around each point and along the segments between them."""
    canvas = np.zeros((height, width), np.uint8)
    thickness = max(1, round(2 * radius))
    centres = [(round(x), round(y)) for x, y in points]
    for x, y in centres:
        cv2.circle(canvas, (x, y), max(0, round(radius)), 1, -1)
    for a, b in itertools.pairwise(centres):
        cv2.line(canvas, a, b, 1, thickness)
    return canvas.astype(bool)


@dataclass(frozen=True)
class Erase(Edit):
    """Brush stroke that sets pixels to 0 (no echo, black)."""

    kind: ClassVar[str] = "erase"
    points: tuple[tuple[float, float], ...] = ()
    radius: float = 3.0

    def apply(self, context: np.ndarray) -> None:
        context[self.frame][:, brush_mask(*context.shape[-2:], self.points, self.radius)] = 0.0


@dataclass(frozen=True)
class Paint(Edit):
    """Brush stroke that sets pixels to ``value`` (model scale, every channel)."""

    kind: ClassVar[str] = "paint"
    points: tuple[tuple[float, float], ...] = ()
    radius: float = 3.0
    value: float = 1.0

    def apply(self, context: np.ndarray) -> None:
        context[self.frame][:, brush_mask(*context.shape[-2:], self.points, self.radius)] = self.value


def blob_mask(frame: np.ndarray, x: int, y: int, threshold: float) -> np.ndarray:
    """(H, W) bool: the 8-connected pixels >= ``threshold`` (any channel) that hold pixel (x, y)."""
    above = (frame.max(0) >= threshold).astype(np.uint8)
    _, labels = cv2.connectedComponents(above, connectivity=8)
    if not above[y, x]:
        return np.zeros_like(above, bool)
    return labels == labels[y, x]


def _shifted(plane: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``plane`` (..., H, W) moved by (dx, dy) pixels; what comes in from outside is 0."""
    out = np.zeros_like(plane)
    h, w = plane.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = plane[..., src_y, src_x]
    return out


@dataclass(frozen=True)
class MoveBlob(Edit):
    """Move the blob under (x, y) by (dx, dy); pixels it leaves become 0."""

    kind: ClassVar[str] = "move_blob"
    x: int = 0
    y: int = 0
    dx: int = 0
    dy: int = 0
    threshold: float = 0.1  # model scale: what counts as part of a blob

    def apply(self, context: np.ndarray) -> None:
        frame = context[self.frame]  # (C, H, W)
        h, w = frame.shape[-2:]
        if not (0 <= self.x < w and 0 <= self.y < h):
            raise WhatIfError(f"{self.describe()}: ({self.x}, {self.y}) is outside the {w}x{h} frame")
        mask = blob_mask(frame, self.x, self.y, self.threshold)
        if not mask.any():
            raise WhatIfError(
                f"{self.describe()}: no blob at ({self.x}, {self.y}): "
                f"the value there is below {self.threshold}"
            )
        blob = np.where(mask, frame, 0.0)
        moved_mask = _shifted(mask, self.dx, self.dy)
        frame[:, mask] = 0.0
        frame[:, moved_mask] = _shifted(blob, self.dx, self.dy)[:, moved_mask]


@dataclass(frozen=True)
class Shift(Edit):
    """Move the whole frame by (dx, dy) pixels; the uncovered border becomes 0."""

    kind: ClassVar[str] = "shift"
    dx: int = 0
    dy: int = 0

    def apply(self, context: np.ndarray) -> None:
        context[self.frame] = _shifted(context[self.frame], self.dx, self.dy)


@dataclass(frozen=True)
class Scale(Edit):
    """Multiply the frame's values by ``intensity`` (clipped to [0, 1]) and zoom it by ``zoom``."""

    kind: ClassVar[str] = "scale"
    intensity: float = 1.0
    zoom: float = 1.0

    def apply(self, context: np.ndarray) -> None:
        if self.zoom <= 0:
            raise WhatIfError(f"{self.describe()}: zoom must be > 0")
        frame = context[self.frame]  # (C, H, W)
        if self.zoom != 1.0:
            h, w = frame.shape[-2:]
            matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, self.zoom)
            frame = np.stack(
                [
                    cv2.warpAffine(plane, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
                    for plane in frame
                ]
            )
        context[self.frame] = np.clip(frame * self.intensity, 0.0, 1.0)


@dataclass(frozen=True)
class CopyFrame(Edit):
    """Replace the frame by a copy of context frame ``source`` (as edited so far)."""

    kind: ClassVar[str] = "copy"
    source: int = 0

    def apply(self, context: np.ndarray) -> None:
        if not 0 <= self.source < len(context):
            raise WhatIfError(
                f"{self.describe()}: source frame {self.source} is not a context frame "
                f"(0..{len(context) - 1})"
            )
        context[self.frame] = context[self.source]


EDIT_KINDS: dict[str, type[Edit]] = {
    cls.kind: cls for cls in (Erase, Paint, MoveBlob, Shift, Scale, CopyFrame)
}


def edit_from_dict(d: dict[str, Any]) -> Edit:
    """The edit a :meth:`Edit.to_dict` describes; :class:`WhatIfError` names what is wrong."""
    if not isinstance(d, dict) or "kind" not in d:
        raise WhatIfError(f"an edit is an object with a 'kind', got {d!r:.80}")
    cls = EDIT_KINDS.get(d["kind"])
    if cls is None:
        raise WhatIfError(f"unknown edit kind {d['kind']!r}; known: {', '.join(EDIT_KINDS)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in d.items() if k != "kind"}
    unknown = set(values) - set(fields)
    if unknown:
        raise WhatIfError(
            f"{cls.kind}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(fields)}"
        )
    if "frame" not in values:
        raise WhatIfError(f"{cls.kind}: which frame? the 'frame' field is missing")
    try:
        for name, value in values.items():
            if name == "points":
                values[name] = tuple((float(x), float(y)) for x, y in value)
            elif fields[name].type in ("int",):
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError(f"{name} must be an integer, got {value!r}")
                values[name] = int(value)
            else:
                values[name] = float(value)
    except (TypeError, ValueError) as exc:
        raise WhatIfError(f"{cls.kind}: {exc}") from None
    return cls(**values)


def apply_edits(context: np.ndarray, edits: Sequence[Edit]) -> np.ndarray:
    """A copy of ``context`` (T, C, H, W) with every edit applied in order."""
    context = np.array(context, dtype=np.float32, copy=True)
    if context.ndim != 4:
        raise WhatIfError(f"context frames must be (T, C, H, W), got shape {context.shape}")
    for index, edit in enumerate(edits):
        if not 0 <= edit.frame < len(context):
            raise WhatIfError(
                f"edit {index + 1} ({edit.describe()}): frame {edit.frame} is not a context frame "
                f"(0..{len(context) - 1})"
            )
        edit.apply(context)
    return context


class EditList:
    """An ordered list of edits with undo/redo; what the window keeps and ``--edits`` files hold."""

    def __init__(self, edits: Sequence[Edit] = ()):
        self._edits: list[Edit] = list(edits)
        self._undone: list[Edit] = []

    def __len__(self) -> int:
        return len(self._edits)

    def __iter__(self) -> Iterator[Edit]:
        return iter(self._edits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EditList) and self._edits == other._edits

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(self._edits)

    def push(self, edit: Edit) -> None:
        self._edits.append(edit)
        self._undone.clear()

    def undo(self) -> Edit | None:
        """Take back the last edit (returned), or None when there is none."""
        if not self._edits:
            return None
        edit = self._edits.pop()
        self._undone.append(edit)
        return edit

    def redo(self) -> Edit | None:
        if not self._undone:
            return None
        edit = self._undone.pop()
        self._edits.append(edit)
        return edit

    def clear(self) -> None:
        self._undone = list(reversed(self._edits)) + self._undone
        self._edits.clear()

    def apply(self, context: np.ndarray) -> np.ndarray:
        return apply_edits(context, self._edits)

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> str:
        """One edit per line, so that a diff of two edit files reads edit by edit."""
        lines = ",\n".join(f"  {json.dumps(e.to_dict())}" for e in self._edits)
        return (
            f'{{"version": {FORMAT_VERSION}, "edits": [\n{lines}\n]}}'
            if lines
            else f'{{"version": {FORMAT_VERSION}, "edits": []}}'
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "edits") -> EditList:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WhatIfError(f"{source}: not JSON ({exc})") from None
        if isinstance(data, list):  # a bare list of edits is accepted too
            data = {"version": FORMAT_VERSION, "edits": data}
        if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
            raise WhatIfError(f'{source}: expected {{"version": 1, "edits": [...]}}')
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise WhatIfError(
                f"{source}: edits format version {data['version']!r}, this mimviewer reads {FORMAT_VERSION}"
            )
        edits = []
        for index, item in enumerate(data["edits"]):
            try:
                edits.append(edit_from_dict(item))
            except WhatIfError as exc:
                raise WhatIfError(f"{source}: edit {index + 1}: {exc}") from None
        return cls(edits)

    def save(self, path: str | Path) -> Path:
        from mimviewer.atomic import write_text

        return write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> EditList:
        path = Path(path)
        if not path.is_file():
            raise WhatIfError(f"{path}: no such edits file")
        if path.stat().st_size > 16 * 2**20:
            raise WhatIfError(f"{path}: {path.stat().st_size} bytes is too large for an edits file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WhatIfError(f"{path}: cannot read ({exc})") from None
        return cls.from_json(text, source=str(path))


# -- the edited rollout ------------------------------------------------------------------------
@dataclass
class WhatIf:
    """The original and the edited rollout of one sequence, and the edited context."""

    original: Any  # mimviewer.inference.Rollout
    edited: Any  # mimviewer.inference.Rollout
    context: np.ndarray  # (pre, C, H, W) the original context frames
    edited_context: np.ndarray  # (pre, C, H, W) after the edits

    @property
    def difference(self) -> np.ndarray:
        """Edited minus original prediction, (aft, C, H, W)."""
        return self.edited.prediction[0] - self.original.prediction[0]


def run_whatif(
    model: Any,
    context: np.ndarray,
    edits: Sequence[Edit],
    *,
    aft: int | None = None,
    device: Any = None,
    probes: Any = None,
) -> WhatIf:
    """Roll out ``context`` (pre, C, H, W) as it is and with ``edits`` applied (same model, same device)."""
    from mimviewer.inference import rollout

    context = np.asarray(context, dtype=np.float32)
    edited = apply_edits(context, edits)
    pre = len(context)
    original = rollout(model, context, pre, aft, probes=probes, device=device)
    changed = rollout(model, edited, pre, aft, probes=probes, device=device)
    return WhatIf(original, changed, context, edited)
