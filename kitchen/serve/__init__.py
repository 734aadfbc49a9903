"""``kitchen serve``: a Tinker-compatible training server on the local torch backend.

The server reaches the backend and the event log only through ports (``kitchen.ports``'s
``ServingClient`` and ``kitchen.serve.journal.ServedLog``, an ``EventLog``): the CLI picks
and opens them (``kitchen.cli.serve.open_ports``) and hands them to the app.

A served model is a kitchen run (workflow ``served``) whose transitions are driven by HTTP
requests instead of the runner. Every state-changing request is stored as a content-addressed
blob and recorded as an event before it is acknowledged, so a restarted server rebuilds each
model from its newest checkpoint plus the requests logged after it. See docs/serve.md.

This package imports nothing heavy at module level: fastapi, uvicorn and torch load when the
app is built (``kitchen.serve.app.create_app``).
"""
