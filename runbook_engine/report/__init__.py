"""Verification reports: the verdict model and its renderers (Markdown, HTML, JSON, JUnit)."""
