"""Dashboards and alerts: the Grafana dashboard, the Prometheus alert rules and their tests,
all generated from the Python modules here (``python -m cluster.observability.generate``)."""
