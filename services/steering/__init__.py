"""The steering service: HLS and DASH content steering manifests from the control plane's state."""
