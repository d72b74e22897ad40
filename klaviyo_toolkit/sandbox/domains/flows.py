"""Sandbox domain: flows (being written)."""
