"""Evaluation: metrics per ../shared/CONVENTIONS.md, trajectories (TUM), plots and reports."""
