"""Evaluation: PCK and pseudo-label analyses."""
