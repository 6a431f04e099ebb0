"""``/dashboard``: whether work is flowing, at a glance, without JavaScript.

Everything comes from what the services record, never from a Prometheus server (the user may
run none): the database (images settled per minute over the last hour by status, time from post
to result, counts per status, images the circuit breaker held back), nsqd's ``/stats`` (the
queue), the face service's gRPC health and its own ``/metrics`` (recognition time, from the
Identify histogram). The chart is SVG drawn here; a source that does not answer is shown as such,
the page still renders.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import bottle
from prometheus_client.parser import text_string_to_metric_families

from kubeface.core import image_queries
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.lifecycle import BREAKER_REASON
from kubeface.core.messages import CHANNEL, TOPIC
from kubeface.core.queue import get_json, nsqd_url, tls_context
from kubeface.core.statuses import TERMINAL, Status

log = logging.getLogger(__name__)

MINUTES = 60
REFRESH_SECONDS = 10
SOURCE_TIMEOUT = 1.5  # each outside source; the page must come back quickly
FINAL = [Status.PROCESSED, Status.UNKNOWN, Status.NO_FACE, Status.FAILED]
COLOURS = {Status.PROCESSED: "#2e9d57", Status.UNKNOWN: "#4a6fd1", Status.NO_FACE: "#9aa0a6",
           Status.FAILED: "#d23c3c"}
SETTLED = tuple(s.value for s in FINAL)  # bound as `status IN :settled`


@dataclass
class Dashboard:
    per_minute: list[dict[Status, int]]  # oldest minute first, the current minute last
    counts: dict[Status, int]
    settled_last_hour: int = 0
    settle_p50: float | None = None
    settle_p95: float | None = None
    recognition_p50: float | None = None
    recognition_p95: float | None = None
    recognition_calls: int = 0
    recognition_note: str = ""
    queue: dict[str, int] = field(default_factory=dict)
    queue_note: str = ""
    face_state: str = "unknown"
    breaker_held_back: int = 0

    @property
    def breaker(self) -> str:
        return "open" if self.breaker_held_back else "closed"

    def chart(self) -> str:
        return settled_chart(self.per_minute)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of already sorted values, by linear interpolation."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative ``(upper bound, count)`` buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def _settled(db: Database, board: Dashboard) -> None:
    rows = db.query(
        "SELECT LEAST(FLOOR(TIMESTAMPDIFF(SECOND, updated_at, NOW(3)) / 60), :last) AS ago,"
        " status, COUNT(*) AS n FROM images"
        " WHERE status IN :settled"
        " AND updated_at >= NOW(3) - INTERVAL 1 HOUR GROUP BY ago, status",
        last=MINUTES - 1, settled=SETTLED)
    for row in rows:
        minute = MINUTES - 1 - int(row.ago)
        board.per_minute[minute][Status(row.status)] += int(row.n)
    seconds = sorted(float(r.s) for r in db.query(
        "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, updated_at) / 1e6 AS s FROM images"
        " WHERE status IN :settled"
        " AND updated_at >= NOW(3) - INTERVAL 1 HOUR ORDER BY updated_at DESC LIMIT 20000",
        settled=SETTLED))
    board.settled_last_hour = sum(sum(m.values()) for m in board.per_minute)
    board.settle_p50, board.settle_p95 = percentile(seconds, 0.5), percentile(seconds, 0.95)
    board.breaker_held_back = int(db.query(
        "SELECT COUNT(*) AS n FROM images WHERE last_error = :reason"
        " AND status = :pending AND updated_at >= NOW(3) - INTERVAL 5 MINUTE",
        reason=BREAKER_REASON, pending=Status.PENDING.value)[0].n)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=SOURCE_TIMEOUT) as reply:  # noqa: S310 - http only
        return reply.read()


def _queue(settings: Settings, board: Dashboard) -> None:
    try:
        tls = tls_context(settings)
        stats = get_json(nsqd_url(settings.nsqd_http_address,
                                  f"/stats?format=json&topic={TOPIC}", tls), SOURCE_TIMEOUT, tls)
    except Exception as exc:
        board.queue_note = f"nsqd at {settings.nsqd_http_address} did not answer ({exc})"
        return
    queue = {"waiting": 0, "in flight": 0, "deferred": 0}
    for topic in stats.get("topics", []):
        if topic.get("topic_name") != TOPIC:
            continue
        queue["waiting"] += int(topic.get("depth", 0))
        for channel in topic.get("channels", []):
            if channel.get("channel_name") == CHANNEL:
                queue["waiting"] += int(channel.get("depth", 0))
                queue["in flight"] += int(channel.get("in_flight_count", 0))
                queue["deferred"] += int(channel.get("deferred_count", 0))
    board.queue = queue


def _face(settings: Settings, board: Dashboard) -> None:
    from kubeface.processor.face_client import FaceClient, NotServing

    client = FaceClient(settings.grpc_address, SOURCE_TIMEOUT, SOURCE_TIMEOUT)
    try:
        client.check_health()
        board.face_state = "serving"
    except NotServing as exc:
        board.face_state = f"not serving ({exc})"
    finally:
        client.close()
    host = settings.grpc_address.rpartition(":")[0]
    url = f"http://{host}:{settings.face_metrics_port}/metrics"
    try:
        text = _get(url).decode()
    except Exception as exc:
        board.recognition_note = f"the face service's metrics at {url} did not answer ({exc})"
        return
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "kubeface_identify_duration_seconds_bucket"
                    and sample.labels.get("outcome", "").startswith("OUTCOME_")):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    pairs = list(buckets.items())
    board.recognition_calls = int(max(buckets.values(), default=0))
    board.recognition_p50 = histogram_quantile(0.5, pairs)
    board.recognition_p95 = histogram_quantile(0.95, pairs)


def collect(db: Database, settings: Settings) -> Dashboard:
    """Everything the page shows; the database being away raises (the page's guard answers)."""
    board = Dashboard(per_minute=[dict.fromkeys(FINAL, 0) for _ in range(MINUTES)],
                      counts=image_queries.status_counts(db))
    _settled(db, board)
    _queue(settings, board)
    try:
        _face(settings, board)
    except Exception as exc:  # any trouble with a source is shown, never a failed page
        board.face_state = f"unknown ({type(exc).__name__})"
    return board


def settled_chart(per_minute: list[dict[Status, int]], width: int = 720,
                  height: int = 220) -> str:
    """Stacked bars, one a minute, coloured by status; the axes say minutes ago and images."""
    left, bottom, top = 40, 24, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((sum(m.values()) for m in per_minute), default=0)
    scale = max(peak, 1)
    bar = plot_w / len(per_minute)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" id="settled-chart" '
             'aria-label="Images settled per minute over the last hour, by status">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
             'stroke="#8a929c"/>',
             f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" font-size="11">{peak}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>']
    for i, minute in enumerate(per_minute):
        y = top + plot_h
        for status in FINAL:
            n = minute.get(status, 0)
            if not n:
                continue
            h = plot_h * n / scale
            y -= h
            parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[status]}" data-status="{status.value}"'
                         f' data-count="{n}"><title>{n} {status.words}, '
                         f'{len(per_minute) - 1 - i} min ago</title></rect>')
    for ago in (60, 45, 30, 15, 0):
        x = left + plot_w * (len(per_minute) - ago) / len(per_minute)
        label = "now" if ago == 0 else f"-{ago} min"
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" '
                     f'font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def install(frontend: Any) -> None:
    """Add ``GET /dashboard`` to the frontend's app (its ``render`` and database)."""

    def page() -> bottle.HTTPResponse:
        try:
            board = collect(frontend.db, frontend.settings)
        except image_queries.DATABASE_AWAY as exc:
            log.warning("database unavailable: %s", getattr(exc, "orig", exc))
            response = frontend.render("unavailable", 503, refresh=REFRESH_SECONDS)
            response.set_header("Retry-After", str(REFRESH_SECONDS))
            return response
        return frontend.render("dashboard", board=board, colours=COLOURS, final=FINAL,
                               seconds=seconds, refresh=REFRESH_SECONDS,
                               terminal=TERMINAL)

    frontend.app.route("/dashboard", "GET", page)
