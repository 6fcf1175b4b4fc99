"""Errors a user can act on: the CLI prints them as one line, the GUI in a dialog."""


class MimviewerError(Exception):
    """Base for every error whose message is meant for the user (no traceback needed)."""


class ConfigError(MimviewerError, ValueError):
    """A model configuration that cannot work (bad sizes, unknown option, ...)."""


class CheckpointError(MimviewerError):
    """A checkpoint file that is missing, corrupt, unsafe or of an unknown kind."""


class DataError(MimviewerError):
    """A sequence file that is missing, corrupt or of the wrong shape."""


class ShapeError(DataError, ValueError):
    """Input whose shape does not fit the model (the message names expected vs given)."""
