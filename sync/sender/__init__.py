"""The terminal's side of sync: forwards the local log to the central receiver, prunes what is acked."""
