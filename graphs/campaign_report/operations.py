"""The Klaviyo operations the reporter's own code calls (the persona's scopes and tools must cover them)."""

REPORTING_TOOL = "query_campaign_values"
OPERATIONS = ("get_accounts", "get_metrics", "get_campaigns", REPORTING_TOOL)
