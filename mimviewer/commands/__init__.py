"""Subcommands of the `mimviewer` CLI, one module each (see mimviewer.cli)."""
