"""Read-only checks that observe a cluster and return verdicts with evidence."""
