"""The Klaviyo operations the syncer's own code calls (the persona's scopes and tools must cover them)."""

#: The write operation of each kind of batch.
WRITES = {
    "import": "bulk_import_profiles",
    "add": "add_profiles_to_list",
    "subscribe": "bulk_subscribe_profiles",
    "remove": "remove_profiles_from_list",
}
#: The Klaviyo operations this graph's code calls (the persona's scopes and tools must cover them).
OPERATIONS = (
    "get_lists",
    "get_segments",
    "get_profiles_for_list",
    "get_profiles_for_segment",
    "get_profiles",
    "get_bulk_import_profiles_jobs",
    "get_errors_for_bulk_import_profiles_job",
    *WRITES.values(),
)
