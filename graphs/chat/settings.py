"""The chat graph's settings (a persona's ``settings:``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Settings"]


class Settings(BaseModel):
    """Chat personas take no graph settings beyond the persona's own fields."""

    model_config = ConfigDict(extra="forbid")
    max_turn_tool_calls: int = Field(default=12, description="Tool calls allowed per user message.")
