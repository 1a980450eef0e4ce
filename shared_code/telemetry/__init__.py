"""Metrics (and, through the Azure Monitor distribution, traces) for operators.

`setup.configure_telemetry` turns sending on once per process when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is set; `instruments.metrics()` is what
the operations record into. Without the setting, the OpenTelemetry API's
no-op meter takes every value and sends nothing. Rank 1, beside storage: it
imports only core and OpenTelemetry, so scan, backup and admin may all use it.
"""
