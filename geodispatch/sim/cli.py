"""``geodispatch demo``, ``simulate``, ``callgen`` and ``phoneline``: the demo and its load
generators."""

from __future__ import annotations

import argparse


def _demo(args: argparse.Namespace) -> int:
    from geodispatch.sim.demo import run_demo

    return run_demo(args)


def _simulate(args: argparse.Namespace) -> int:
    from geodispatch.sim.runner import run_simulate

    return run_simulate(args)


def _callgen(args: argparse.Namespace) -> int:
    from geodispatch.sim.callgen import run_callgen

    return run_callgen(args)


def _phoneline(args: argparse.Namespace) -> int:
    from geodispatch.sim.phoneline import run_phoneline

    return run_phoneline(args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from geodispatch.sim import callgen, demo, phoneline, runner

    p = sub.add_parser("demo", help="the whole system on a real city with a simulated fleet")
    demo.add_arguments(p)
    p.set_defaults(func=_demo)

    s = sub.add_parser("simulate", help="simulated crews driving the road graph over MQTT")
    runner.add_arguments(s)
    s.set_defaults(func=_simulate)

    c = sub.add_parser("callgen", help="replay real calls through the API (--auto: dispatch too)")
    callgen.add_arguments(c)
    c.set_defaults(func=_callgen)

    ph = sub.add_parser("phoneline", help="simulated callers dialling 102 through Kamailio (SIP)")
    phoneline.add_arguments(ph)
    ph.set_defaults(func=_phoneline)
