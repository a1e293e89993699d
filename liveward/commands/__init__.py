"""The `liveward` sub-commands, one module per command group."""
