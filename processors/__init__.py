"""The Faust app and its agents, with the pure decision functions they call."""
