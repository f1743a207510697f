"""Loading and validating playbooks, roles and inventory; sandboxed templating."""
