-- Rollups analysts query, kept up to date by materialized views on qoe_telemetry_samples.
-- Time is the sample's event time as the processors define it: the player clock, capped
-- at the bridge's receipt time (least(sampled_at, occurred_at)). Every table is
-- partitioned by UTC day, so retention drops whole days (no TTL on 18.16).
-- The views see each insert: a batch the sink re-sends after a failure counts twice in
-- the sums here, while qoe_telemetry_samples FINAL stays exact.

-- Per minute, serving region, CDN, content and country: -State columns, finalised with
-- the matching -Merge function (countMerge, sumMerge, uniqMerge, quantilesMerge...).
CREATE TABLE IF NOT EXISTS ${database}.qoe_minute
(
    minute_ms UInt64,
    serving_region String,
    cdn String,
    content_id String,
    country String,
    samples AggregateFunction(count),
    play_ms AggregateFunction(sum, Int64),
    rebuffer_ms AggregateFunction(sum, Int64),
    rebuffer_count AggregateFunction(sum, Int64),
    error_samples AggregateFunction(sum, UInt64),
    sessions AggregateFunction(uniq, String),
    viewers AggregateFunction(uniq, String),
    exits_before_start AggregateFunction(uniqIf, String, UInt8),
    bitrate_kbps AggregateFunction(quantiles(0.5, 0.95), Int32),
    startup_ms AggregateFunction(quantilesIf(0.5, 0.9), Int32, UInt8)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(minute_ms, 1000), 'UTC'))
ORDER BY (serving_region, cdn, content_id, country, minute_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.qoe_minute_mv TO ${database}.qoe_minute
AS SELECT
    intDiv(least(sampled_at, occurred_at), 60000) * 60000 AS minute_ms,
    serving_region,
    cdn,
    content_id,
    country,
    countState() AS samples,
    sumState(toInt64(play_ms)) AS play_ms,
    sumState(toInt64(rebuffer_ms)) AS rebuffer_ms,
    sumState(toInt64(rebuffer_count)) AS rebuffer_count,
    sumState(toUInt64(isNotNull(error_code))) AS error_samples,
    uniqState(session_ref) AS sessions,
    uniqState(viewer_pseudonym) AS viewers,
    uniqIfState(session_ref, exited_before_start) AS exits_before_start,
    quantilesState(0.5, 0.95)(bitrate_kbps) AS bitrate_kbps,
    quantilesIfState(0.5, 0.9)(assumeNotNull(startup_ms), toUInt8(isNotNull(startup_ms))) AS startup_ms
FROM ${database}.qoe_telemetry_samples
GROUP BY minute_ms, serving_region, cdn, content_id, country;

-- Player errors per minute, serving region, CDN, content and error code.
CREATE TABLE IF NOT EXISTS ${database}.qoe_errors_minute
(
    minute_ms UInt64,
    serving_region String,
    cdn String,
    content_id String,
    error_code String,
    samples AggregateFunction(count),
    sessions AggregateFunction(uniq, String),
    viewers AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(minute_ms, 1000), 'UTC'))
ORDER BY (serving_region, cdn, error_code, content_id, minute_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.qoe_errors_minute_mv
TO ${database}.qoe_errors_minute
AS SELECT
    intDiv(least(sampled_at, occurred_at), 60000) * 60000 AS minute_ms,
    serving_region,
    cdn,
    content_id,
    ifNull(error_code, '') AS error_code,
    countState() AS samples,
    uniqState(session_ref) AS sessions,
    uniqState(viewer_pseudonym) AS viewers
FROM ${database}.qoe_telemetry_samples
-- 18.16 puts a select alias in place of a column of that name in WHERE too, so the test
-- must hold for the alias (ifNull(error_code, '')) as well as for the column: it does.
WHERE error_code != ''
GROUP BY minute_ms, serving_region, cdn, content_id, error_code;

-- Samples and play time per rendition bitrate, hour, serving region, CDN and content.
CREATE TABLE IF NOT EXISTS ${database}.qoe_bitrate_hour
(
    hour_ms UInt64,
    serving_region String,
    cdn String,
    content_id String,
    bitrate_kbps Int32,
    samples UInt64,
    play_ms Int64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(hour_ms, 1000), 'UTC'))
ORDER BY (serving_region, cdn, content_id, bitrate_kbps, hour_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.qoe_bitrate_hour_mv
TO ${database}.qoe_bitrate_hour
AS SELECT
    intDiv(least(sampled_at, occurred_at), 3600000) * 3600000 AS hour_ms,
    serving_region,
    cdn,
    content_id,
    bitrate_kbps,
    count() AS samples,
    sum(toInt64(play_ms)) AS play_ms
FROM ${database}.qoe_telemetry_samples
GROUP BY hour_ms, serving_region, cdn, content_id, bitrate_kbps;

-- Pseudonymous sessions: one row per session and UTC day it played on (a session across
-- midnight has two), merged by qoe_sessions. Only pseudonyms: session_ref and
-- viewer_pseudonym are HMACs under the epoch key, unlinkable once that key is destroyed.
CREATE TABLE IF NOT EXISTS ${database}.qoe_session_days
(
    day_ms UInt64,
    session_ref String,
    viewer_pseudonym String,
    pseudonym_epoch String,
    serving_region String,
    content_id String,
    country String,
    first_sample_at AggregateFunction(min, UInt64),
    last_sample_at AggregateFunction(max, UInt64),
    samples AggregateFunction(count),
    play_ms AggregateFunction(sum, Int64),
    rebuffer_ms AggregateFunction(sum, Int64),
    rebuffer_count AggregateFunction(sum, Int64),
    error_samples AggregateFunction(sum, UInt64),
    startup_ms AggregateFunction(minIf, Int32, UInt8),
    exited_before_start AggregateFunction(max, UInt8),
    bitrate_kbps AggregateFunction(avg, Int32),
    cdns AggregateFunction(groupUniqArray, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(toDateTime(intDiv(day_ms, 1000), 'UTC'))
ORDER BY (serving_region, content_id, session_ref, viewer_pseudonym, pseudonym_epoch, country, day_ms);

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.qoe_session_days_mv
TO ${database}.qoe_session_days
AS SELECT
    intDiv(least(sampled_at, occurred_at), 86400000) * 86400000 AS day_ms,
    session_ref,
    viewer_pseudonym,
    pseudonym_epoch,
    serving_region,
    content_id,
    country,
    minState(least(sampled_at, occurred_at)) AS first_sample_at,
    maxState(least(sampled_at, occurred_at)) AS last_sample_at,
    countState() AS samples,
    sumState(toInt64(play_ms)) AS play_ms,
    sumState(toInt64(rebuffer_ms)) AS rebuffer_ms,
    sumState(toInt64(rebuffer_count)) AS rebuffer_count,
    sumState(toUInt64(isNotNull(error_code))) AS error_samples,
    minIfState(assumeNotNull(startup_ms), toUInt8(isNotNull(startup_ms))) AS startup_ms,
    maxState(exited_before_start) AS exited_before_start,
    avgState(bitrate_kbps) AS bitrate_kbps,
    groupUniqArrayState(cdn) AS cdns
FROM ${database}.qoe_telemetry_samples
GROUP BY day_ms, session_ref, viewer_pseudonym, pseudonym_epoch, serving_region, content_id, country;

-- Finalised views for analysts. qoe_sessions: one row per session (days merged).
CREATE VIEW IF NOT EXISTS ${database}.qoe_sessions
AS SELECT
    session_ref,
    any(viewer_pseudonym) AS viewer_pseudonym,
    any(pseudonym_epoch) AS pseudonym_epoch,
    any(serving_region) AS serving_region,
    any(content_id) AS content_id,
    any(country) AS country,
    minMerge(first_sample_at) AS first_sample_at,
    maxMerge(last_sample_at) AS last_sample_at,
    countMerge(samples) AS samples,
    sumMerge(play_ms) AS play_ms,
    sumMerge(rebuffer_ms) AS rebuffer_ms,
    sumMerge(rebuffer_count) AS rebuffer_count,
    sumMerge(error_samples) AS error_samples,
    minIfMerge(startup_ms) AS startup_ms,
    maxMerge(exited_before_start) AS exited_before_start,
    avgMerge(bitrate_kbps) AS bitrate_kbps_avg,
    groupUniqArrayMerge(cdns) AS cdns
FROM ${database}.qoe_session_days
GROUP BY session_ref;

-- qoe_region_cdn_minute: QoE per minute, serving region and CDN, with the same floor as
-- the published aggregates (10 distinct viewers; rows below it are left out).
CREATE VIEW IF NOT EXISTS ${database}.qoe_region_cdn_minute
AS SELECT
    minute_ms,
    serving_region,
    cdn,
    countMerge(samples) AS samples,
    uniqMerge(sessions) AS sessions,
    uniqMerge(viewers) AS viewers,
    sumMerge(play_ms) AS play_ms,
    sumMerge(rebuffer_ms) AS rebuffer_ms,
    -- Aliases, not repeated -Merge calls: an alias named like its column would nest them.
    if(play_ms + rebuffer_ms = 0, 0, rebuffer_ms / (play_ms + rebuffer_ms)) AS rebuffer_ratio,
    sumMerge(error_samples) / samples AS error_rate,
    uniqIfMerge(exits_before_start) AS exits_before_start,
    quantilesMerge(0.5, 0.95)(bitrate_kbps) AS bitrate_kbps_p50_p95,
    quantilesIfMerge(0.5, 0.9)(startup_ms) AS startup_ms_p50_p90
FROM ${database}.qoe_minute
GROUP BY minute_ms, serving_region, cdn
HAVING viewers >= 10;
