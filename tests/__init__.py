"""Tests for Tally."""
