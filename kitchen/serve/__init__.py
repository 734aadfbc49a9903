"""``kitchen serve``: a Tinker-compatible training server on the local torch backend.

A served model is a kitchen run (workflow ``served``) whose transitions are driven by HTTP
requests instead of the runner. Every state-changing request is stored as a content-addressed
blob and recorded as an event before it is acknowledged, so a restarted server rebuilds each
model from its newest checkpoint plus the requests logged after it. See docs/serve.md.

This package imports nothing heavy at module level: fastapi, uvicorn and torch load when the
app is built (``kitchen.serve.app.create_app``).
"""
