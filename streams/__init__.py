"""Kafka plumbing: topic catalog, Avro single-object codec, typed producers and consumers, dead letters."""
