"""Klaviyo's documented limits on text and JSON values, for code that reads Klaviyo data outside a tool call.

The tools check every argument against these before a request is sent (``_input_checks``); a caller
that takes a Klaviyo document from elsewhere (a form submission given on the command line, a webhook
body) checks it with the same figures, so a value no Klaviyo event could hold is refused the same way.

Example::

    problem = json_problem(properties, EVENT_LIMITS)  # None, or "at big: a string of 1,048,576 bytes; ..."
"""

from __future__ import annotations

from ._input_checks import EVENT_LIMITS, JSON_LIMITS, MAX_EVENT_STRING, JsonLimits, json_problem, text_problem

__all__ = ["EVENT_LIMITS", "JSON_LIMITS", "MAX_EVENT_STRING", "JsonLimits", "json_problem", "text_problem"]
