"""PNG charts for analysts: the response-time distribution and median / p90 by hour of day.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, safe in API threads).
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import aggregate
from geodispatch.errors import InvalidInput

CHARTS = ("distribution", "by_hour")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _period(start: datetime | None, end: datetime | None) -> str:
    if start and end:
        return f"{start:%Y-%m-%d} – {end:%Y-%m-%d}"
    return "all time"


def distribution_png(
    *, session: Session, start: datetime | None = None, end: datetime | None = None,
    region: str | None = None, target_s: float = 600.0,
) -> bytes:
    """Histogram of total response times with the median, p90 and target marked."""
    where, params = ["total_response_s IS NOT NULL"], dict[str, object]()
    for col, op, value in (("received_at", ">=", start), ("received_at", "<", end),
                           ("region", "=", region)):
        if value is not None:
            where.append(f"{col} {op} :p{len(params)}")
            params[f"p{len(params)}"] = value
    values = np.array(session.execute(text(
        f"SELECT total_response_s FROM response_intervals WHERE {' AND '.join(where)}"),
        params).scalars().all(), dtype=float) / 60.0
    fig = Figure(figsize=(7.5, 4.0))
    ax = fig.add_subplot()
    if values.size:
        top = float(np.quantile(values, 0.99))
        ax.hist(np.clip(values, 0, top), bins=60, color="#4c78a8")
        for q, style, label in ((0.5, "-", "median"), (0.9, "--", "p90")):
            v = float(np.quantile(values, q))
            ax.axvline(v, color="#222", linestyle=style, label=f"{label} {v:.1f} min")
    ax.axvline(target_s / 60.0, color="#d73027", label=f"target {target_s / 60:.0f} min")
    ax.set_xlabel("call received → first crew on scene (minutes; top 1 % clipped)")
    ax.set_ylabel("incidents")
    ax.set_title(f"Total response time, {values.size} incidents, {_period(start, end)}")
    ax.legend()
    return _png(fig)


def by_hour_png(
    *, session: Session, start: datetime | None = None, end: datetime | None = None,
    region: str | None = None, target_s: float = 600.0,
) -> bytes:
    """Median and p90 total response per local hour of day, with the incident count."""
    stats = aggregate(session=session, by=["hour"], start=start, end=end, region=region,
                      target_s=target_s)
    hours = [g.key["hour"] for g in stats]
    fig = Figure(figsize=(7.5, 4.0))
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    ax2.bar(hours, [g.count for g in stats], color="#ddd", label="incidents")
    ax2.set_ylabel("incidents")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    for attr, style, label in (("median_s", "-o", "median"), ("p90_s", "--o", "p90")):
        ys = [np.nan if getattr(g, attr) is None else getattr(g, attr) / 60.0 for g in stats]
        ax.plot(hours, ys, style, label=label, color="#4c78a8" if label == "median" else "#e45756")
    ax.axhline(target_s / 60.0, color="#d73027", linewidth=0.8, label="target")
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour of day (local)")
    ax.set_ylabel("total response (minutes)")
    ax.set_title(f"Response time by hour, {_period(start, end)}")
    ax.legend(loc="upper left")
    return _png(fig)


def chart_png(name: str, **kwargs: object) -> bytes:
    """One of :data:`CHARTS` by name (same keyword arguments as the functions above)."""
    if name == "distribution":
        return distribution_png(**kwargs)  # type: ignore[arg-type]
    if name == "by_hour":
        return by_hour_png(**kwargs)  # type: ignore[arg-type]
    raise InvalidInput(f"unknown chart {name!r}; one of {CHARTS}")


def write_charts(*, session: Session, out_dir: Path, **kwargs: object) -> list[Path]:
    """Write every chart as ``<out_dir>/response_<name>.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CHARTS:
        path = out_dir / f"response_{name}.png"
        path.write_bytes(chart_png(name, session=session, **kwargs))
        paths.append(path)
    return paths
