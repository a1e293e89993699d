"""The simulated media plane: per region an ingest point, two packagers, an origin, CDN edges."""
