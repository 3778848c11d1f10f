"""Shared contracts and plumbing of the real-time streaming platform."""
