"""Sub-commands of the `vattfw` CLI, one module each (see vattfw.cli.COMMANDS)."""
