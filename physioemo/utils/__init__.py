"""Shared helpers: validation, configuration, logging, seeding."""
