"""Avro event schemas: one `.avsc` per event, the only definition of an event."""
