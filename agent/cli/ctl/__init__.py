"""The operations of `tally ctl`, one module per domain, each a table of CtlOp."""
