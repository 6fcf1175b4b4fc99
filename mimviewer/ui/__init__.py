"""The desktop app (Qt only: draws and forwards events; no tensor maths here)."""

import pyqtgraph as pg

# Arrays from the engine are (rows, cols[, rgb]): tell pyqtgraph so, once for every view.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")

CONTEXT_COLOUR = "#2563eb"  # frames the model read (context): blue
PREDICTED_COLOUR = "#ea580c"  # frames the model predicted on its own: orange
