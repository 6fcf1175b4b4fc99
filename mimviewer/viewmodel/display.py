"""How each frame view and heatmap is drawn: colour map, levels, theme, and the display-ready
images that follow (drawn once per frame and kept, so that scrubbing only swaps them).

A frame view ("gt", "pred0", "diff0", ...) has a :class:`ViewDisplay`: a colour map
(:data:`COLOUR_MAPS`) and a levels rule (:data:`LEVEL_MODES`), in the model scale:

* ``full`` — the data's whole range ([0, 1]; differences ±``DIFFERENCE_RANGE``), the
  renderer's own drawing (what every export shows);
* ``auto`` — the smallest and largest value this view shows over the whole timeline;
* ``percentile`` — the same, clipping ``percentile`` % at each end;
* ``fixed`` — the user's ``fixed`` pair (set by dragging the histogram's region).

With ``linked`` on, a change of one view's colour map or levels applies to every view of
its kind (frames with frames, differences with differences), as pyqtgraph's linked
histograms do. Mixed into :class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.render import DIFFERENCE_RANGE, TABLES, colour_scale

if TYPE_CHECKING:
    from mimviewer.render import FrameRenderer
    from mimviewer.viewmodel.events import SessionEvents
    from mimviewer.viewmodel.results import ModelSlot

COLOUR_MAPS: dict[str, str] = {
    "grey": "grey",
    "viridis": "viridis",
    "radar": "radar scale (pySTEPS)",
    "diverging": "diverging (blue − white − red)",
}
LEVEL_MODES: dict[str, str] = {
    "full": "full range of the data",
    "auto": "min … max over the timeline",
    "percentile": "percentiles over the timeline",
    "fixed": "fixed (drag the histogram)",
}
THEMES: tuple[str, ...] = ("system", "light", "dark")


@dataclass(frozen=True)
class ViewDisplay:
    """One frame view's colour map and levels (model scale)."""

    colour_map: str
    levels: str = "full"
    fixed: tuple[float, float] = (0.0, 1.0)
    percentile: float = 1.0  # clipped at each end, in percent

    def to_json(self) -> dict:
        return asdict(self)


def view_kind(view: str) -> str:
    """ "diff" for difference views, "frame" for GT and predictions."""
    return "diff" if view.startswith("diff") else "frame"


def table_index(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values -> indices 0..255 of a lookup table spanning [lo, hi] (NaN -> 0)."""
    scaled = (np.asarray(values, np.float32) - lo) / ((hi - lo) or 1.0)
    return np.rint(np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0) * 255).astype(np.intp)


class DisplayState:
    """Mixed into the Session: per-view colour maps and levels, the theme, and image caches."""

    events: SessionEvents
    slots: list[ModelSlot | None]
    renderer: FrameRenderer
    units: str
    frames: np.ndarray | None
    _forget_heatmaps: Callable[[int], None]  # HeatmapImagesState's: drops a slot's drawn heatmaps

    def _init_display(self) -> None:
        self._display: dict[str, ViewDisplay] = {}
        self._linked = False
        self._theme = "system"
        self._view_images: dict[tuple[str, int], np.ndarray | None] = {}
        self.zoom: tuple[float, float, float, float] | None = None  # x, y, width, height of the views

    # -- choices ---------------------------------------------------------------------------
    def colour_maps(self, view: str) -> list[str]:
        """The colour maps a view offers (the radar scale only for radar data)."""
        names = ["grey", "viridis"]
        if self.units in ("dBZ", "mm/h"):
            names.append("radar")
        return [*names, "diverging"]

    def default_display(self, view: str) -> ViewDisplay:
        if view_kind(view) == "diff":
            return ViewDisplay("diverging", fixed=(-DIFFERENCE_RANGE, DIFFERENCE_RANGE))
        return ViewDisplay("radar" if self.renderer.scale.name == "pysteps" else self.renderer.scale.name)

    def display(self, view: str) -> ViewDisplay:
        return self._display.get(view) or self.default_display(view)

    def set_display(self, view: str, **changes) -> None:
        """Change one view's colour map / levels (every view of its kind when linked)."""
        current = self.display(view)
        new = replace(current, **changes)
        if new.colour_map not in COLOUR_MAPS:
            raise ValueError(f"unknown colour map {new.colour_map!r}; known: {', '.join(COLOUR_MAPS)}")
        if new.levels not in LEVEL_MODES:
            raise ValueError(f"unknown levels {new.levels!r}; known: {', '.join(LEVEL_MODES)}")
        lo, hi = map(float, new.fixed)
        new = replace(
            new, fixed=(min(lo, hi), max(lo, hi)), percentile=float(min(max(new.percentile, 0), 49))
        )
        targets = [view]
        if self._linked:
            targets = [v for v in self.view_names() if view_kind(v) == view_kind(view)] or [view]
        for target in targets:
            self._display[target] = replace(
                self.display(target),
                **{k: getattr(new, k) for k in ("colour_map", "levels", "fixed", "percentile")},
            )
            self._forget_view(target)
        self.events.display.emit(view)

    @property
    def linked(self) -> bool:
        return self._linked

    @linked.setter
    def linked(self, value: bool) -> None:
        """Link the levels of every view of a kind (the current settings of the first view win)."""
        self._linked = bool(value)
        if self._linked:
            for kind in ("frame", "diff"):
                views = [v for v in self.view_names() if view_kind(v) == kind]
                if views:
                    self.set_display(views[0])
        self.events.display.emit("")

    def reset_display(self) -> None:
        self._display = {}
        self._view_images = {}
        self.events.display.emit("")

    @property
    def theme(self) -> str:
        return self._theme

    @theme.setter
    def theme(self, name: str) -> None:
        if name not in THEMES:
            raise ValueError(f"unknown theme {name!r}; known: {', '.join(THEMES)}")
        self._theme = name
        self.events.theme.emit(name)

    def view_names(self) -> list[str]:
        names = ["gt"]
        for index, slot in enumerate(self.slots):
            if slot is not None:
                names += [f"pred{index}", f"diff{index}"]
        return names

    # -- values and levels -----------------------------------------------------------------
    def view_values(self, view: str) -> np.ndarray | None:
        """Every frame a view shows so far, (T, H, W) model scale, channel mean (None: nothing)."""
        if self.frames is None:
            return None
        if view == "gt":
            return self.frames[: self.timeline_length].mean(1)  # type: ignore[attr-defined]
        slot = self.slots[int(view[-1])]
        if slot is None or slot.outputs is None or not slot.done_steps:
            return None
        outputs = slot.outputs[: slot.done_steps]
        if view_kind(view) == "diff":
            return (outputs - self.frames[1 : len(outputs) + 1]).mean(1)
        return outputs.mean(1)

    def view_levels(self, view: str) -> tuple[float, float]:
        """The model-scale range a view's colour map spans, by its levels rule."""
        shown = self.display(view)
        full = (-DIFFERENCE_RANGE, DIFFERENCE_RANGE) if view_kind(view) == "diff" else (0.0, 1.0)
        if shown.levels == "fixed":
            return shown.fixed
        if shown.levels == "full":
            return full
        values = self.view_values(view)
        if values is None or not np.isfinite(values).any():
            return full
        if shown.levels == "auto":
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        else:
            lo, hi = (float(v) for v in np.nanpercentile(values, [shown.percentile, 100 - shown.percentile]))
        return (lo, hi) if hi > lo else full

    def histogram(self, view: str, bins: int = 100) -> tuple[np.ndarray, np.ndarray] | None:
        """(bin centres, counts) of every value the view shows (None: nothing yet)."""
        values = self.view_values(view)
        if values is None:
            return None
        finite = values[np.isfinite(values)]
        counts, edges = np.histogram(finite, bins=bins, range=self.histogram_range(view))
        return (edges[:-1] + edges[1:]) / 2, counts

    def histogram_range(self, view: str) -> tuple[float, float]:
        """Every value a view can show: [0, 1], or ±1 for a difference of two such frames."""
        return (-2 * DIFFERENCE_RANGE, 2 * DIFFERENCE_RANGE) if view_kind(view) == "diff" else (0.0, 1.0)

    def display_note(self, view: str) -> str:
        """A short note of a view's own colour map / levels ("" for the default drawing)."""
        if self.is_default_display(view):
            return ""
        shown = self.display(view)
        levels = {"full": "full range", "auto": "min–max", "fixed": "fixed"}.get(
            shown.levels, f"{shown.percentile:g}–{100 - shown.percentile:g} %"
        )
        lo, hi = self.view_levels(view)
        return f"{shown.colour_map}, {levels} ({lo:.3g} … {hi:.3g})"

    def view_table(self, view: str) -> np.ndarray:
        """(256, 3) uint8 colours of a view's map, from its low level to its high level."""
        name = self.display(view).colour_map
        if name == "radar":
            units = self.units if self.units in ("dBZ", "mm/h") else "dBZ"
            return colour_scale(units, "pysteps").lookup_table()
        return TABLES[name]

    def is_default_display(self, view: str) -> bool:
        return view not in self._display or self._display[view] == self.default_display(view)

    # -- display-ready images (drawn once, then swapped) --------------------------------------
    def view_image(self, view: str, frame: int, drawn: np.ndarray | None) -> np.ndarray | None:
        """A view's image of ``frame``: the renderer's ``drawn`` one for the default display,
        else drawn once with the view's map and levels and kept until they change."""
        if drawn is None or self.is_default_display(view):
            return drawn
        if self.frames is not None and self.frames.shape[1] == 3 and view_kind(view) == "frame":
            return drawn  # a colour video shows its own colours
        cache = (view, frame)
        if cache not in self._view_images:
            values = self._frame_values(view, frame)
            lo, hi = self.view_levels(view)
            self._view_images[cache] = (
                None if values is None else self.view_table(view)[table_index(values, lo, hi)]
            )
        return self._view_images[cache]

    def _frame_values(self, view: str, frame: int) -> np.ndarray | None:
        if view == "gt":
            return self.frames[frame].mean(0)
        slot = self.slots[int(view[-1])]
        t = frame - 1
        if slot is None or slot.outputs is None or not 0 <= t < slot.done_steps:
            return None
        if view_kind(view) == "diff":
            return (slot.outputs[t] - self.frames[frame]).mean(0)
        return slot.outputs[t].mean(0)

    def _forget_view(self, view: str | None = None) -> None:
        """Drop drawn images of one view (every view: None); they are drawn again when shown."""
        if view is None:
            self._view_images = {}
        else:
            self._view_images = {k: v for k, v in self._view_images.items() if k[0] != view}

    def _forget_slot(self, slot: int) -> None:
        """A slot has new results: its views' and heatmaps' drawn images are stale."""
        self._view_images = {k: v for k, v in self._view_images.items() if not k[0].endswith(str(slot))}
        self._forget_heatmaps(slot)
        for view in self.view_names():
            if view_kind(view) == "frame" and self.display(view).levels in ("auto", "percentile"):
                self._forget_view(view)  # GT levels may be linked to the predictions'
