"""The reference central receiver: authenticates terminals, stores every event once, answers reports."""
