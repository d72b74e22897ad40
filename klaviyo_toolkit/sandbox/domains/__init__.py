"""Klaviyo behaviour the personas depend on, one module per area; importing registers handlers."""
