"""Hyper-parameter search with Optuna: search spaces, the protocol objective, studies.

Optuna is imported only by :mod:`.study` and :mod:`.outputs`, and inside functions.
"""
