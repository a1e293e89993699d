"""The license service's gRPC contract (`license.proto`) and its generated stubs."""
