"""The web console `liveward run` serves: a live player, the regions, decisions and actions."""
