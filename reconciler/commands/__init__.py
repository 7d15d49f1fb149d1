"""One module per ``reconcile`` subcommand; each is a thin click command returning an exit code."""
