"""Sandbox domain: misc (being written)."""
