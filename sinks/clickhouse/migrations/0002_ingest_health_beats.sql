-- Heartbeats of ingest points, packagers and origins from ingest.health: one row per
-- IngestHealth, columns named after its fields; deduplicated on event_id like
-- qoe_telemetry_samples (read with FINAL or uniqExact(event_id)). Enums are stored as
-- their symbol so a new symbol needs no ALTER.
CREATE TABLE IF NOT EXISTS ${database}.ingest_health_beats
(
    event_id String,
    occurred_at UInt64,
    region String,
    source_id String,
    role String,
    content_id String,
    beat_seq Int64,
    last_segment_seq Int64,
    last_segment_at UInt64,
    status String,
    input_bitrate_kbps Int32
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(occurred_at, 1000), 'UTC'))
ORDER BY (region, source_id, occurred_at, event_id);
