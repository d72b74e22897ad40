"""Sandbox domain: campaigns (being written)."""
