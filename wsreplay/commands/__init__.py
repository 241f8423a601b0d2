"""One module per ``wsreplay`` subcommand; see :mod:`wsreplay.cli`."""
