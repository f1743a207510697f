"""Cluster access: object references and the kind registry, the ``Cluster`` protocol and its
implementations (``KubeCluster`` over the official client, ``MemoryCluster`` in memory), changes,
diffs, label selectors and the shared ``Flow`` schema."""
