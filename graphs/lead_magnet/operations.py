"""The Klaviyo operations the sequencer's own code calls (the persona's scopes and tools must cover them)."""

OPERATIONS = ("get_profiles", "get_profile", "get_metrics", "get_events", "create_event", "update_profile")
