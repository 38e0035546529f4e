"""Evaluation: ordinal metrics, splits, the DREAMER protocols and reports."""
