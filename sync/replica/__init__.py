"""Replication of the plant timeline: the pull feed every node serves and the puller."""
