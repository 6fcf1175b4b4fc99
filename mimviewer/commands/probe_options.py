"""The probe settings flags shared by every command that records a trace (predict, export).

Torch-free at import (the CLI parses arguments before torch loads); the defaults equal
``ProbeSpec``'s (a test checks).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimviewer.trace import ProbeSpec

DEFAULTS = {"lo": 0.1, "hi": 0.9, "state_bound": 0.9, "eps": 1e-3, "channel": 0}


def add_probe_flags(parser: argparse.ArgumentParser) -> None:
    """--lo/--hi (gate saturation), --state-bound (large states), --dh-eps (dH stillness), --channel."""
    group = parser.add_argument_group("trace settings (gate statistics)")
    group.add_argument(
        "--lo", type=float, default=DEFAULTS["lo"], help="a gate below LO is saturated low (default 0.1)"
    )
    group.add_argument(
        "--hi", type=float, default=DEFAULTS["hi"], help="a gate above HI is saturated high (default 0.9)"
    )
    group.add_argument(
        "--state-bound",
        type=float,
        default=DEFAULTS["state_bound"],
        metavar="A",
        help="a state (C, M, H, ...) with |x| > A counts as large (default 0.9)",
    )
    group.add_argument(
        "--dh-eps",
        type=float,
        default=DEFAULTS["eps"],
        metavar="EPS",
        help="dH with |dH| < EPS counts as still, no temporal change (default 0.001)",
    )
    group.add_argument(
        "--channel",
        type=int,
        default=DEFAULTS["channel"],
        help="the channel kept whole in the trace (default 0)",
    )


def probe_spec(args: argparse.Namespace) -> ProbeSpec:
    """The ProbeSpec the flags ask for (a ConfigError names a bad combination, e.g. lo >= hi)."""
    from mimviewer.trace import ProbeSpec

    return ProbeSpec(
        lo=args.lo, hi=args.hi, state_bound=args.state_bound, eps=args.dh_eps, channel=args.channel
    )
