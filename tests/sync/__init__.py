"""Tests for sync."""
