"""Errors of the personas layer that the CLI turns into one line and exit code 2."""

from __future__ import annotations

from klaviyo_toolkit.errors import ToolkitUsageError


class UsageProblem(ToolkitUsageError):
    """A mistake in how a command or API was called (exit code 2)."""


class AnswerProblem(UsageProblem):
    """An answer to a paused run's approvals that cannot be taken (names another request, is not
    approve / reject / edit-with-args, or nothing waits): nothing was resumed, the run is as it was."""
