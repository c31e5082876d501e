"""The `migrator` command: one module per command group; only cli/ prints or exits."""
