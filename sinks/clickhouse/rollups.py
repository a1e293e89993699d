"""The QoE analytics tables beyond the routed ones, and the example queries analysts start from.

Migrations 0004 to 0006 create them: `qoe_aggregates` (routed from `qoe.aggregates`), the
rollups materialized views keep from `qoe_telemetry_samples`, the finalised views over
them, and the DP budget ledger. The example queries are the README's; `liveward analytics
examples` prints them for the configured database, and a test runs each on both backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from sinks.clickhouse.backends import quote_identifier

# Tables holding data (day-partitioned, dropped by retention).
ROLLUP_TABLES = ("qoe_minute", "qoe_errors_minute", "qoe_bitrate_hour", "qoe_session_days")
DP_LEDGER_TABLE = "dp_budget_ledger"
# What keeps the rollups current, and the finalised views analysts read.
MATERIALIZED_VIEWS = tuple(f"{table}_mv" for table in ROLLUP_TABLES)
VIEWS = ("qoe_sessions", "qoe_region_cdn_minute")
# Everything the migrations create besides the routed tables and schema_migrations.
DERIVED_TABLES = (*ROLLUP_TABLES, DP_LEDGER_TABLE, *MATERIALIZED_VIEWS, *VIEWS)


@dataclass(frozen=True, slots=True)
class ExampleQuery:
    """A documented analyst query; `${database}` stands for the database name."""

    name: str
    question: str
    sql: str

    def for_database(self, database: str) -> str:
        return Template(self.sql).substitute(database=quote_identifier(database))


# Plain SQL both ClickHouse 18.16 and chdb run: no positional ORDER BY, no window
# functions, no CTEs; times are epoch milliseconds (toDateTime shows them).
EXAMPLE_QUERIES = (
    ExampleQuery(
        "rebuffer-by-region-cdn",
        "Rebuffer ratio by serving region and CDN, per minute, over the last hour "
        "(rows under 10 distinct viewers are left out by the view).",
        """SELECT
    toDateTime(intDiv(minute_ms, 1000), 'UTC') AS minute,
    serving_region,
    cdn,
    round(rebuffer_ratio, 4) AS rebuffer_ratio,
    viewers,
    samples
FROM ${database}.qoe_region_cdn_minute
WHERE minute_ms >= (toUInt64(now()) - 3600) * 1000
ORDER BY minute_ms, serving_region, cdn""",
    ),
    ExampleQuery(
        "rebuffer-published",
        "The same from the published k-anonymous aggregates (10 s windows; '*' rows hold "
        "groups merged upward), per minute.",
        """SELECT
    toDateTime(intDiv(window_start, 60000) * 60, 'UTC') AS minute,
    serving_region,
    cdn,
    round(sum(rebuffer_ms) / (sum(rebuffer_ms) + sum(play_ms)), 4) AS rebuffer_ratio,
    sum(samples) AS samples,
    sum(late_samples) AS late,
    sum(suppressed_samples) AS suppressed
FROM ${database}.qoe_aggregates FINAL
WHERE window_start >= (toUInt64(now()) - 3600) * 1000
GROUP BY intDiv(window_start, 60000), serving_region, cdn
HAVING sum(rebuffer_ms) + sum(play_ms) > 0
ORDER BY intDiv(window_start, 60000), serving_region, cdn""",
    ),
    ExampleQuery(
        "top-error-codes",
        "Top player error codes of the last 24 hours, with the sessions and viewers they hit.",
        """SELECT
    error_code,
    countMerge(samples) AS errors,
    uniqMerge(sessions) AS sessions_hit,
    uniqMerge(viewers) AS viewers_hit
FROM ${database}.qoe_errors_minute
WHERE minute_ms >= (toUInt64(now()) - 86400) * 1000
GROUP BY error_code
ORDER BY errors DESC
LIMIT 10""",
    ),
    ExampleQuery(
        "bitrate-distribution",
        "Bitrate distribution of the last 24 hours: samples and play time per rendition.",
        """SELECT
    bitrate_kbps,
    sum(samples) AS samples_at_bitrate,
    round(sum(play_ms) / 3600000, 3) AS play_hours
FROM ${database}.qoe_bitrate_hour
WHERE hour_ms >= (toUInt64(now()) - 86400) * 1000
GROUP BY bitrate_kbps
ORDER BY bitrate_kbps""",
    ),
    ExampleQuery(
        "bitrate-percentiles",
        "Median and 95th-percentile bitrate per serving region and CDN, last hour.",
        """SELECT
    serving_region,
    cdn,
    quantilesMerge(0.5, 0.95)(bitrate_kbps) AS bitrate_p50_p95_kbps,
    uniqMerge(viewers) AS viewers_seen
FROM ${database}.qoe_minute
WHERE minute_ms >= (toUInt64(now()) - 3600) * 1000
GROUP BY serving_region, cdn
HAVING viewers_seen >= 10
ORDER BY serving_region, cdn""",
    ),
    ExampleQuery(
        "video-start-by-content",
        "Video start time (median) and exits before the first frame per content, today, "
        "from the pseudonymous sessions.",
        """SELECT
    content_id,
    count() AS sessions_started,
    quantileIf(0.5)(startup_ms, startup_ms > 0) AS video_start_ms_p50,
    sum(exited_before_start) AS exits_before_start
FROM ${database}.qoe_sessions
WHERE first_sample_at >= intDiv(toUInt64(now()), 86400) * 86400000
GROUP BY content_id
HAVING uniqExact(viewer_pseudonym) >= 10
ORDER BY sessions_started DESC""",
    ),
)
