"""Personas: marketing agents defined in YAML, run as LangGraph graphs over the Klaviyo toolkit."""

__all__: list[str] = []
