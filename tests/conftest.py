"""Shared fixtures. Qt tests run offscreen; engine tests never touch Qt."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch

# The tests run tiny models, where a second intra-op thread costs more in hand-offs than it
# saves (and the CI machine has only two cores, one of them busy with Qt's offscreen paints).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def fork_server():
    """One process with torch imported that forks a real child process per command line
    (tests/cli_forkserver.py): the CLI, lazy-read and hostile-file suites share it."""
    from cli_forkserver import ForkServer

    server = ForkServer()
    yield server
    server.close()
