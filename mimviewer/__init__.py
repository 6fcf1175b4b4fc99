"""mimviewer: look inside recurrent video-prediction models.

The engine (nets, checkpoints, data, inference, trace, metrics, export) is a plain library
with no Qt; the desktop app lives in :mod:`mimviewer.ui`.
"""

__version__ = "0.1.0"
