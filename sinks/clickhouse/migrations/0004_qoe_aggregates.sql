-- Windowed QoE aggregates from qoe.aggregates: one row per QoEAggregate, columns named after
-- its fields. Each (serving_region, cdn, content_id, window) has one deterministic event_id,
-- so a window published again after a worker restart replaces its first version: the sort
-- key ends in event_id and the version column keeps the latest occurred_at. Read with FINAL.
-- Every row already covers at least k distinct viewers (the processors' k-anonymity floor);
-- cdn/content_id '*' rows hold groups too small on their own (see merged_groups).
CREATE TABLE IF NOT EXISTS ${database}.qoe_aggregates
(
    event_id String,
    occurred_at UInt64,
    region String,
    window_start UInt64,
    window_end UInt64,
    serving_region String,
    cdn String,
    content_id String,
    sessions Int32,
    viewers Int32,
    samples Int32,
    rebuffer_ratio Float64,
    video_start_ms_p50 Nullable(Float64),
    exits_before_start Int32,
    error_rate Float64,
    bitrate_p50_kbps Float64,
    bitrate_p95_kbps Float64,
    late_samples Int32,
    play_ms Int64,
    rebuffer_ms Int64,
    suppressed_samples Int32,
    merged_groups Int32
)
ENGINE = ReplacingMergeTree(occurred_at)
PARTITION BY toYYYYMMDD(toDateTime(intDiv(window_start, 1000), 'UTC'))
ORDER BY (serving_region, cdn, content_id, window_start, event_id);
