"""Command-line interface: ``physioemo <command> ...``."""
