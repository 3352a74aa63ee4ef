"""Evaluation on labelled data, training of the student, synthetic views (torch, eval extras)."""
