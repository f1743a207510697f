"""Runs, phases, checkpoints, the journal, rollback, the planner and the maintenance window."""
