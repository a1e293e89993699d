"""Simulated live players: follow content steering, buffer, stall, fail over, report CMCD."""
