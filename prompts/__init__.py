"""Prompt templates, versioned in their front matter (id, version); personas reference them by file."""
