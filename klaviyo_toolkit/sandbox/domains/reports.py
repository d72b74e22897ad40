"""Sandbox domain: reports (being written)."""
