"""Sandbox domain: events (being written)."""
