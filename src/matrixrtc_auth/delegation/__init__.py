"""Delegated delayed leave events (MSC4140, PROTOCOL.md section 8).

``fsm`` holds the state machine as data, ``job`` runs one participant's job,
``manager`` keeps the jobs by (LiveKit room, identity) and routes webhook
events to them, ``store`` persists them, ``delayed_events`` and ``csapi`` talk
to the homeserver's client-server API.
"""
