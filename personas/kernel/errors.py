"""Errors of the personas layer that the CLI turns into one line and exit code 2."""

from __future__ import annotations

from klaviyo_toolkit.errors import ToolkitUsageError


class UsageProblem(ToolkitUsageError):
    """A mistake in how a command or API was called (exit code 2)."""
