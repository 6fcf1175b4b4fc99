"""Files for reports and slides: GIF/MP4 comparisons, PNG strips, metrics and gate statistics.

One module per job: :mod:`~mimviewer.export.drawing` (layout sizes, role colours, text and
colour bars), :mod:`~mimviewer.export.frames` (the frames' shape contract and renderer),
:mod:`~mimviewer.export.writers` (PNG/GIF/MP4 files), :mod:`~mimviewer.export.comparison`,
:mod:`~mimviewer.export.strip`, :mod:`~mimviewer.export.tables` (metrics and gate
statistics as CSV/JSON) and :mod:`~mimviewer.export.heatmaps`. The public names are
re-exported here, so ``from mimviewer.export import write_comparison`` is the way in.

Images are drawn with numpy and OpenCV (``cv2.putText``) only — no Qt, no matplotlib — so
the CLI, the GUI and a headless server export the same pixels; frames and differences are
drawn by :class:`mimviewer.render.FrameRenderer`, the window's renderer. Every writer goes
through :mod:`mimviewer.atomic`, so a failed export never leaves a half-written file where the
user's old one was.

Frames come in model scale [0, 1] as ``(T, C, H, W)``: ``gt`` holds the whole sequence
(``pre`` context frames, then the frames to predict) and every prediction holds the
predicted frames only, ``(T - pre, C, H, W)``.

Numbering: frames and steps count from 0 everywhere — in images ("frame 0/19"), in the
window, in CSV/JSON files (metrics' ``frame`` column, gate statistics' ``step`` and
``predicts_frame``) and in the arrays; step t reads frame t and predicts frame t + 1.
"""

from mimviewer.export.comparison import (
    ComparisonLayout,
    comparison_layout,
    render_comparison,
    write_comparison,
)
from mimviewer.export.drawing import (
    ABSENT_COLOUR,
    ABSENT_HATCH,
    BACKGROUND,
    BORDER,
    COLOURBAR_SPACE,
    COLOURBAR_WIDTH,
    CONTEXT_COLOUR,
    FONT,
    FONT_SCALE,
    HEADER,
    LABEL,
    MARGIN,
    MIN_PANEL,
    PREDICTED_COLOUR,
    TEXT_COLOUR,
)
from mimviewer.export.frames import observed_frames
from mimviewer.export.heatmaps import heatmap_scale, render_heatmap_grid
from mimviewer.export.strip import render_strip, write_strip
from mimviewer.export.tables import (
    TRACE_COLUMNS,
    trace_rows,
    write_metrics_csv,
    write_metrics_json,
    write_trace_stats,
)
from mimviewer.export.writers import VIDEO_SUFFIXES, ExportError, write_png, write_video

__all__ = [
    "ABSENT_COLOUR",
    "ABSENT_HATCH",
    "BACKGROUND",
    "BORDER",
    "COLOURBAR_SPACE",
    "COLOURBAR_WIDTH",
    "CONTEXT_COLOUR",
    "FONT",
    "FONT_SCALE",
    "HEADER",
    "LABEL",
    "MARGIN",
    "MIN_PANEL",
    "PREDICTED_COLOUR",
    "TEXT_COLOUR",
    "TRACE_COLUMNS",
    "VIDEO_SUFFIXES",
    "ComparisonLayout",
    "ExportError",
    "comparison_layout",
    "heatmap_scale",
    "observed_frames",
    "render_comparison",
    "render_heatmap_grid",
    "render_strip",
    "trace_rows",
    "write_comparison",
    "write_metrics_csv",
    "write_metrics_json",
    "write_png",
    "write_strip",
    "write_trace_stats",
    "write_video",
]
