-- Player QoE samples from qoe.telemetry: one row per QoETelemetrySample, columns named
-- after its fields. Re-delivered events share their whole sorting key (it ends in
-- event_id), so ReplacingMergeTree collapses them when parts merge; until then read
-- with FINAL, or count uniqExact(event_id) instead of count().
-- Plain String rather than LowCardinality: 18.16 has it only behind an experimental flag.
-- No TTL: retention drops whole day partitions (sinks/clickhouse/retention.py).
CREATE TABLE IF NOT EXISTS ${database}.qoe_telemetry_samples
(
    event_id String,
    occurred_at UInt64,
    region String,
    session_ref String,
    viewer_pseudonym String,
    pseudonym_epoch String,
    content_id String,
    cdn String,
    serving_region String,
    country String,
    subdivision String,
    sampled_at UInt64,
    bitrate_kbps Int32,
    buffer_ms Int32,
    play_ms Int32,
    rebuffer_count Int32,
    rebuffer_ms Int32,
    startup_ms Nullable(Int32),
    exited_before_start UInt8,
    error_code Nullable(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(occurred_at, 1000), 'UTC'))
ORDER BY (region, content_id, occurred_at, event_id);
