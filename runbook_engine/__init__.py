"""Runbook Engine: declarative, phased service-mesh rollouts for Kubernetes, with verifying
checkpoints, dry-run impact plans, resume from any machine and exact rollback."""

__version__ = "0.1.0"
