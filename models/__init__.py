"""Bundled trained demo checkpoints (safetensors) and their model cards."""
