"""Analyst commands: ``heatmap``, ``import calls``, ``analytics refresh|report|charts``.

Each command is one unit of work: it opens a transaction, calls the services and commits.
Dates given without a time zone are read in ``settings.analytics_timezone``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from geodispatch.settings import get_settings

log = logging.getLogger(__name__)


def parse_when(value: str) -> datetime:
    """ISO date or date-time; naive values are local time of ``settings.analytics_timezone``."""
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {value!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ZoneInfo(get_settings().analytics_timezone))
    return ts


def _factory() -> Any:
    from geodispatch.db import app_engine, check_database, session_factory

    engine = app_engine(get_settings())
    check_database(engine)
    return session_factory(engine)


def _heatmap(args: argparse.Namespace) -> int:
    from geodispatch.analytics.heatmap import render_heatmap
    from geodispatch.db import transaction

    router = None
    if args.metric == "coverage_gaps" and args.live_coverage:
        from importlib.util import find_spec

        if find_spec("geodispatch.routing.engine") is not None:
            from geodispatch.routing.engine import load_router  # optional producer: routing

            router = load_router(get_settings())
    with transaction(_factory()) as session:
        out = render_heatmap(session=session, metric=args.metric, res=args.res, start=args.start,
                             end=args.end, out=args.out, region=args.region,
                             target_s=args.target, router=router)
    print(out)
    return 0


def _import_calls(args: argparse.Namespace) -> int:
    from geodispatch.analytics.importer import import_calls
    from geodispatch.analytics.intervals import refresh_intervals
    from geodispatch.analytics.mapping import load_mapping
    from geodispatch.db import transaction

    if args.infer:
        return _infer(args)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    mapping = load_mapping(args.mapping)
    rejects = args.rejects or Path(f"{args.file.stem}.rejects.csv")
    with transaction(_factory()) as session:
        result = import_calls(session=session, path=args.file, mapping=mapping,
                              region=args.region, tz=args.tz, rejects_file=rejects,
                              progress=progress)
        refreshed = 0
        if result.first_received is not None and not args.no_refresh:
            progress("refreshing response intervals")
            refreshed = refresh_intervals(session=session,
                                          since=result.first_received.to_pydatetime())
        progress("committing")
    elapsed = time.perf_counter() - t0
    print(f"{args.file.name}: {result.rows} rows, {result.calls} calls; new: "
          f"{result.new_incidents} incidents, {result.new_assignments} assignments, "
          f"{result.new_units} crews; {result.skipped_rows} rows rejected, "
          f"{result.flagged_rows} flagged; {refreshed} intervals refreshed in {elapsed:.1f} s "
          f"({(result.rows + result.skipped_rows) / max(elapsed, 1e-9):,.0f} rows/s)")
    for reason, n in result.reject_reasons.items():
        print(f"  rejected {n}: {reason}")
    if result.rejects_file is not None:
        print(f"  rejected and flagged rows written to {result.rejects_file}")
    if result.unmapped_categories:
        top = ", ".join(f"{k!r} ({v})" for k, v in list(result.unmapped_categories.items())[:8])
        print(f"  {len(result.unmapped_categories)} category values not in the mapping's "
              f"[category.map], kept as they are: {top}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    from geodispatch.analytics.infer import infer_mapping

    proposal = infer_mapping(args.file)
    print(proposal.toml, end="")
    for note in proposal.notes:
        print(f"note: {note}", file=sys.stderr)
    if not proposal.complete:
        print("note: the proposal is incomplete: fill the lines marked REQUIRED before importing",
              file=sys.stderr)
    return 0


def _zone_report(args: argparse.Namespace) -> int:
    from geodispatch.analytics.report import build_report, resolve_scope
    from geodispatch.db import transaction

    with transaction(_factory()) as session:
        scope = resolve_scope(session=session, start=args.start, end=args.end,
                              region=args.region, zone=args.zone, category=args.category,
                              priority=args.priority)
        page = build_report(session=session, scope=scope, target_s=args.target)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page, encoding="utf-8")
    except OSError as exc:
        from geodispatch.errors import InvalidInput

        raise InvalidInput(f"cannot write {args.out}: {exc}") from None
    print(args.out)
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from geodispatch.analytics.intervals import refresh_intervals
    from geodispatch.db import transaction

    t0 = time.perf_counter()
    with transaction(_factory()) as session:
        n = refresh_intervals(session=session, since=args.since)
    print(f"{n} incidents' response intervals refreshed in {time.perf_counter() - t0:.1f} s")
    return 0


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def format_report(rows: list[Any], by: list[str], target_s: float) -> str:
    """A plain-text table of :class:`~geodispatch.analytics.aggregates.GroupStat` rows."""
    head = [*by, "count", "n", "median", "p90", f"<= {_fmt(target_s)}"]
    body = [
        [*(str(r.key[b]) for b in by), str(r.count), str(r.n), _fmt(r.median_s), _fmt(r.p90_s),
         "-" if r.within_target is None else f"{100 * r.within_target:.1f}%"]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if i >= len(by) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True)))
              for line in body]
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from geodispatch.analytics.aggregates import aggregate
    from geodispatch.db import transaction

    target = args.target or get_settings().response_target_s
    with transaction(_factory()) as session:
        for by in args.by or ["hour", "category"]:
            keys = [k for k in by.split(",") if k]
            rows = aggregate(session=session, by=keys, interval=args.interval, start=args.start,
                             end=args.end, region=args.region, target_s=target)
            print(f"\n{args.interval} by {', '.join(keys) or 'all'}")
            print(format_report(rows, keys, target))
    return 0


def _charts(args: argparse.Namespace) -> int:
    from geodispatch.analytics.charts import write_charts
    from geodispatch.db import transaction

    target = args.target or get_settings().response_target_s
    with transaction(_factory()) as session:
        for path in write_charts(session=session, out_dir=args.out_dir, start=args.start,
                                 end=args.end, region=args.region, target_s=target):
            print(path)
    return 0


def _subcommands(sub: Any, name: str, help_text: str, dest: str) -> Any:
    """The sub-subcommands of top-level ``name``, created or shared with another domain."""
    parser = sub.choices.get(name)
    if parser is None:
        parser = sub.add_parser(name, help=help_text)
        return parser.add_subparsers(dest=dest, metavar="WHAT", required=True)
    for action in parser._actions:  # noqa: SLF001 - argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action
    return parser.add_subparsers(dest=dest, metavar="WHAT", required=True)


def _period_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", type=parse_when, default=None,
                   help="calls received at or after (ISO date/time; default: all)")
    p.add_argument("--to", dest="end", type=parse_when, default=None,
                   help="calls received before (ISO date/time; default: all)")
    p.add_argument("--region", default=None, help="only this region")
    p.add_argument("--target", type=float, default=None,
                   help="response target in seconds (default: settings.response_target_s)")


def register(sub: Any) -> None:
    from geodispatch.analytics.heatmap import METRICS

    hm = sub.add_parser("heatmap", help="write a self-contained H3 heatmap page (folium)")
    hm.add_argument("--metric", choices=sorted(METRICS), default="p90_response")
    hm.add_argument("--res", type=int, choices=(7, 8, 9), default=8, help="H3 resolution")
    _period_args(hm)
    hm.add_argument("--out", type=Path, required=True, help="output HTML, e.g. maps/p90.html")
    hm.add_argument("--live-coverage", action="store_true",
                    help="coverage_gaps: also draw today's road coverage (needs a built graph)")
    hm.set_defaults(func=_heatmap)

    imp = _subcommands(sub, "import", "import data from files", "import_command")
    calls = imp.add_parser("calls", help="historical calls for service, any export through a "
                           "column mapping (default: San Francisco Fire's)")
    calls.add_argument("file", type=Path)
    how = calls.add_mutually_exclusive_group()
    how.add_argument("--mapping", default="sf",
                     help="a mapping TOML file, or a shipped one: sf, seattle, new_orleans "
                          "(default sf)")
    how.add_argument("--infer", action="store_true",
                     help="import nothing: print a proposed mapping (TOML) for this file and, "
                          "on standard error, what it could not decide")
    calls.add_argument("--region", default=None,
                       help="region code of the imported calls (default: the mapping's)")
    calls.add_argument("--tz", default=None,
                       help="time zone of the file's timestamps (default: the mapping's)")
    calls.add_argument("--rejects", type=Path, default=None,
                       help="where to write rejected and flagged rows "
                            "(default ./<file>.rejects.csv)")
    calls.add_argument("--no-refresh", action="store_true",
                       help="do not refresh the response intervals afterwards")
    calls.set_defaults(func=_import_calls)

    zr = sub.add_parser("report", help="a self-contained HTML report of one zone (or region) "
                        "over a period: heatmap, P50/P90 per zone vs target, worst cells, trend")
    zr.add_argument("--zone", default=None, help="zone code (the zone and the zones below it)")
    zr.add_argument("--category", default=None, help="only incidents of this category")
    zr.add_argument("--priority", type=int, default=None, choices=(1, 2, 3, 4),
                    help="only incidents of this priority")
    _period_args(zr)
    zr.add_argument("--out", type=Path, required=True, help="output HTML, e.g. maps/report.html")
    zr.set_defaults(func=_zone_report)

    an = sub.add_parser("analytics", help="response-time analytics")
    asub = an.add_subparsers(dest="analytics_command", metavar="ACTION", required=True)
    rf = asub.add_parser("refresh", help="recompute response intervals (all, or --since)")
    rf.add_argument("--since", type=parse_when, default=None,
                    help="only incidents with activity since (ISO date/time)")
    rf.set_defaults(func=_refresh)
    rp = asub.add_parser("report", help="table of count / median / p90 / share within target")
    rp.add_argument("--by", action="append", default=None,
                    help="grouping, comma-separated (hour, dow, category, priority, sector_id, "
                         "region, h3_7..h3_9); repeatable; default: hour and category")
    rp.add_argument("--interval", default="total_response_s",
                    help="interval column (total_response_s, queue_s, travel_s, ...)")
    _period_args(rp)
    rp.set_defaults(func=_report)
    ch = asub.add_parser("charts", help="PNG charts: distribution and by hour")
    _period_args(ch)
    ch.add_argument("--out-dir", type=Path, default=Path("maps"))
    ch.set_defaults(func=_charts)
