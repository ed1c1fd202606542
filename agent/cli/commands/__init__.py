"""Command-line subcommands, one module each; heavy imports stay inside their functions."""
