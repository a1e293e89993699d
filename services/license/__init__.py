"""The license service: ClearKey licenses and HLS AES-128 keys over REST and gRPC."""
