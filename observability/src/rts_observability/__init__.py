"""Observability of the platform as code: Grafana dashboards, the local Prometheus."""
