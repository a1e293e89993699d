"""The HTTP-to-Kafka telemetry bridge: player QoE samples in, pseudonymised events out."""
