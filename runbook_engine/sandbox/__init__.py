"""A Kubernetes-API-compatible cluster emulator with service-mesh physics.

It serves HTTPS with a bearer token and writes a kubeconfig, so the official client and kubectl
use it unchanged. It imports ``kube`` only: its mesh behaviour is an independent implementation
that the planner's predictions and the checks are judged against.
"""
