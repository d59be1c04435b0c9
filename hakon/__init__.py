"""Hakon: a metrics and alerting backend for Kubernetes clusters and edge fleets."""

__version__ = "0.1.0"
