"""The engine: what turns a workflow and a recipe into a run on record.

launch (a run from a recipe and settings) → runner (drives the state machine) → unit of work
(one commit policy) → the event log; the fold (state, snapshots, events and their upcasters),
resume and replay policy, telemetry, the registry of plug-ins, faults. No module here knows a
training key: workflows declare theirs, adapters own theirs.
"""
