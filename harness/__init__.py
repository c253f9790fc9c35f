"""Campaigns over airbench runs: CLI, scheduling, the run store, statistics, figures and reports."""
