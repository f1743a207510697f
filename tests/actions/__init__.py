"""Tests of the built-in actions (task modules)."""
