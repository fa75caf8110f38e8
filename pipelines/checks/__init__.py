"""Checks of what the cluster and Argo CD will read: rendered manifests and CRD schemas."""
