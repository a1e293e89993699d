"""The local stack: Kafka brokers and ClickHouse started as real processes on loopback."""
