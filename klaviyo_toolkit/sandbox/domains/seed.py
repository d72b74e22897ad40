"""Sandbox domain: seed (being written)."""
