"""The delegation job's state machine: states, signals and transitions, as tables.

One job per (LiveKit room, participant identity)::

                     JOINED, FOUND
        WAITING ────────────────────────▶ CONNECTED
         │   │                              │    │
         │   │ WAIT_EXPIRED, LEFT           │    │ LEFT, CONNECTION_ABORTED, GONE
         │   └──────────────────┐           │    ▼
         │                      └─────────────▶ DISCONNECTED ──── SENT ────▶ DONE
         │ CONNECTION_ABORTED               │    │
         ▼                                  │    │ SEND_EXPIRED, CS_API_MISSING
        ABORTED ◀───────────────────────────┘    │
         ▲        EVENT_GONE, RESTART_EXPIRED,   │
         │        CS_API_MISSING                 │
         └───────────────────────────────────────┘

    every live state ── REPLACED ──▶ REPLACED     every live state ── SHUTDOWN ──▶ STOPPED

What each live state does while it lasts (its timers end with it):

- WAITING: polls GetParticipant with backoff (1 s, x1.5, jitter, at most 60 s)
  for at most min(1 h, delay); finding the participant is FOUND, running out
  of time is WAIT_EXPIRED. Nothing is sent to the homeserver.
- CONNECTED: restarts the delayed event at once, then every 80 % of the delay;
  each restart is retried until the event's current deadline. With a sanity
  interval, GetParticipant answering NotFound is GONE.
- DISCONNECTED: sends the delayed event, retrying until its deadline (at least
  1 s, at most 1 h); sent or already gone (404) is SENT.

Terminal states: DONE (the leave was sent), ABORTED (gave up, nothing more to
do), REPLACED (a newer delegation for the same pair took over), STOPPED (the
service shut down; a stored job is restored at the next start). A signal with
no entry for the current state is ignored (logged at DEBUG): late webhooks
are normal.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    WAITING = "waiting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    DONE = "done"
    ABORTED = "aborted"
    REPLACED = "replaced"
    STOPPED = "stopped"


class Signal(enum.Enum):
    # From LiveKit webhooks.
    JOINED = "joined"
    LEFT = "left"
    CONNECTION_ABORTED = "connection_aborted"
    # From the job's own activities.
    FOUND = "found"
    WAIT_EXPIRED = "wait_expired"
    GONE = "gone"
    EVENT_GONE = "event_gone"
    RESTART_EXPIRED = "restart_expired"
    CS_API_MISSING = "cs_api_missing"
    SENT = "sent"
    SEND_EXPIRED = "send_expired"
    # From the manager.
    REPLACED = "replaced"
    SHUTDOWN = "shutdown"


LIVE_STATES = frozenset({State.WAITING, State.CONNECTED, State.DISCONNECTED})
TERMINAL_STATES = frozenset(State) - LIVE_STATES

TRANSITIONS: dict[tuple[State, Signal], State] = {
    (State.WAITING, Signal.JOINED): State.CONNECTED,
    (State.WAITING, Signal.FOUND): State.CONNECTED,
    (State.WAITING, Signal.WAIT_EXPIRED): State.DISCONNECTED,
    # A "left" without a "joined" means the joined webhook was missed.
    (State.WAITING, Signal.LEFT): State.DISCONNECTED,
    (State.WAITING, Signal.CONNECTION_ABORTED): State.ABORTED,
    (State.CONNECTED, Signal.LEFT): State.DISCONNECTED,
    (State.CONNECTED, Signal.CONNECTION_ABORTED): State.DISCONNECTED,
    (State.CONNECTED, Signal.GONE): State.DISCONNECTED,
    (State.CONNECTED, Signal.EVENT_GONE): State.ABORTED,
    (State.CONNECTED, Signal.RESTART_EXPIRED): State.ABORTED,
    (State.CONNECTED, Signal.CS_API_MISSING): State.ABORTED,
    (State.DISCONNECTED, Signal.SENT): State.DONE,
    (State.DISCONNECTED, Signal.SEND_EXPIRED): State.ABORTED,
    (State.DISCONNECTED, Signal.CS_API_MISSING): State.ABORTED,
}
for _live in LIVE_STATES:
    TRANSITIONS[(_live, Signal.REPLACED)] = State.REPLACED
    TRANSITIONS[(_live, Signal.SHUTDOWN)] = State.STOPPED


def next_state(state: State, signal: Signal) -> State | None:
    """The state ``signal`` leads to from ``state``, or None if it is ignored there."""
    return TRANSITIONS.get((state, signal))
