"""Tests for tui."""
