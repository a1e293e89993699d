"""The HTTP/gRPC edges people and players talk to."""
