"""Sandbox domain: profiles (being written)."""
