-- QoETelemetrySample v3: what CMCD players report beyond v2, nullable (null: not
-- reported), so rows written before read as "unknown". object_type is the CMCD object
-- type of the request a sample came with (v, av, a, m, i, c, tt, k, o); JSON samples
-- describe the whole player and leave it null.
-- One ALTER, so the three columns arrive together. ClickHouse 18.16 has no
-- `ADD COLUMN IF NOT EXISTS` (it is a syntax error there), so unlike the others this
-- statement is not safe to race: a second sink applying it at the same moment fails its
-- start once ("column already exists") and finds it applied when it starts again.
ALTER TABLE ${database}.qoe_telemetry_samples
    ADD COLUMN object_type Nullable(String) DEFAULT NULL,
    ADD COLUMN throughput_kbps Nullable(Int32) DEFAULT NULL,
    ADD COLUMN top_bitrate_kbps Nullable(Int32) DEFAULT NULL;
