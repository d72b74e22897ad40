"""Sandbox domain: lists (being written)."""
