-- The differential-privacy budget ledger: one row per noisy release (liveward analytics
-- dp-export), charged against the UTC day of the data it describes. A release is refused
-- when the day's epsilon would exceed the configured budget. Partitioned by that day, so
-- a day's ledger leaves with its data when retention drops the day.
CREATE TABLE IF NOT EXISTS ${database}.dp_budget_ledger
(
    data_day UInt32,
    release_id String,
    charged_at UInt64,
    epsilon Float64,
    description String
)
ENGINE = MergeTree()
PARTITION BY data_day
ORDER BY (data_day, charged_at, release_id);
