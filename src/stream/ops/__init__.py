"""Operations: what an operator watches a running worker with.

``web`` (the worker's web server: metrics, health, the dashboard page ``dashboard.html``),
``metrics`` (Prometheus metrics and the dashboard's snapshot), ``health`` (liveness and
readiness), ``logs`` (text or JSON logs) and ``progress`` (progress bars of the command line).
"""
