"""Drills: failure stories run against the live system, printing the figures they produce."""
