"""Evaluation: metrics per docs/CONVENTIONS.md, trajectories (TUM), plots and reports."""
