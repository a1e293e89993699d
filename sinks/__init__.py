"""Where events come to rest: the ClickHouse sink (server and embedded backends)."""
