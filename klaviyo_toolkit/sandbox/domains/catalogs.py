"""Sandbox domain: catalogs (being written)."""
