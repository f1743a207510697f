"""The sandbox's Kubernetes REST API: routing, discovery, verbs, patches, server-side apply,
watches, garbage collection and ``Status`` error bodies, served over the store."""
