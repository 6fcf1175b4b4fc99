"""The desktop app (Qt only: draws and forwards events; no tensor maths here)."""
