"""liveward: privacy and high availability for live video streams, event-sourced on Kafka."""

__version__ = "0.1.0"
