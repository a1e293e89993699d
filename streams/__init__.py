"""Kafka plumbing: topic catalog, Avro codec, typed producers and consumers, dead letters."""
