"""Pure domain: folds of events into visits, counters, checks and KPIs; no clock, port, socket or SQL."""
