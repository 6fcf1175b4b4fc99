"""Frame numbers and times as the user types and reads them (the timeline's frame box).

A frame is typed as its number on the timeline ("12"), or, where the sequence knows the time
between its frames, as a time since the first frame of the sequence: "90 s", "1.5 min",
"1:30" (minutes:seconds) or "1:02:30" (hours:minutes:seconds).
"""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_WITH_UNIT = re.compile(r"^\s*(?:t\s*=\s*)?([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h)\s*$", re.IGNORECASE)
_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def format_time(seconds: float) -> str:
    """1:30 style (h:mm:ss above an hour)."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def frame_text(frame: int, start: int, interval_s: float | None) -> str:
    """What the frame box shows: the frame number, and its time where the data has times."""
    if interval_s is None:
        return str(frame)
    return f"{frame} ({format_time((start + frame) * interval_s)})"


def parse_frame(text: str, *, start: int, interval_s: float | None, length: int) -> int:
    """The timeline frame a typed text means; ValueError (one line) when it means none."""
    text = text.strip()
    if not length:
        raise ValueError("no sequence is open")
    seconds: float | None = None
    if re.fullmatch(r"\d+", text):
        frame = int(text)
    elif (match := _WITH_UNIT.match(text)) is not None:
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    elif (match := _CLOCK.match(text)) is not None:
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    else:
        raise ValueError(f"{text!r} is not a frame number (0–{length - 1}) or a time such as 90 s or 1:30")
    if seconds is not None:
        if interval_s is None:
            raise ValueError("this sequence has no times between frames: type a frame number")
        frame = round(seconds / interval_s) - start
    if not 0 <= frame < length:
        raise ValueError(f"{text!r} is outside the timeline (frames 0–{length - 1})")
    return frame
