"""The delegation job's state machine, checked as a table (PROTOCOL.md 8.1).

The table in ``fsm.py`` is the whole behaviour of a job's states, so its shape
is checked here: live states can always be replaced or shut down, terminal
states have no way out, every signal means something somewhere, and the
transitions are those the protocol describes.
"""

from __future__ import annotations

from collections import deque

import pytest

from matrixrtc_auth.delegation import fsm
from matrixrtc_auth.delegation.fsm import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Signal,
    State,
    next_state,
)

S = State
G = Signal

# What PROTOCOL.md 8.1 describes, written out independently of fsm.py.
EXPECTED: dict[tuple[State, Signal], State] = {
    (S.WAITING, G.JOINED): S.CONNECTED,
    (S.WAITING, G.FOUND): S.CONNECTED,
    (S.WAITING, G.WAIT_EXPIRED): S.DISCONNECTED,
    (S.WAITING, G.LEFT): S.DISCONNECTED,
    (S.WAITING, G.CONNECTION_ABORTED): S.ABORTED,
    (S.CONNECTED, G.LEFT): S.DISCONNECTED,
    (S.CONNECTED, G.CONNECTION_ABORTED): S.DISCONNECTED,
    (S.CONNECTED, G.GONE): S.DISCONNECTED,
    (S.CONNECTED, G.EVENT_GONE): S.ABORTED,
    (S.CONNECTED, G.RESTART_EXPIRED): S.ABORTED,
    (S.CONNECTED, G.CS_API_MISSING): S.ABORTED,
    (S.DISCONNECTED, G.SENT): S.DONE,
    (S.DISCONNECTED, G.SEND_EXPIRED): S.ABORTED,
    (S.DISCONNECTED, G.CS_API_MISSING): S.ABORTED,
    **{(live, G.REPLACED): S.REPLACED for live in (S.WAITING, S.CONNECTED, S.DISCONNECTED)},
    **{(live, G.SHUTDOWN): S.STOPPED for live in (S.WAITING, S.CONNECTED, S.DISCONNECTED)},
}


def outgoing(state: State) -> dict[Signal, State]:
    return {signal: target for (source, signal), target in TRANSITIONS.items() if source is state}


def test_live_and_terminal_states_partition_the_states() -> None:
    every_state = LIVE_STATES | TERMINAL_STATES
    assert every_state == frozenset(State)
    assert not LIVE_STATES & TERMINAL_STATES
    assert frozenset({S.WAITING, S.CONNECTED, S.DISCONNECTED}) == LIVE_STATES
    assert frozenset({S.DONE, S.ABORTED, S.REPLACED, S.STOPPED}) == TERMINAL_STATES


@pytest.mark.parametrize("state", [state for state in State if state in LIVE_STATES])
def test_every_live_state_handles_replaced_and_shutdown(state: State) -> None:
    assert next_state(state, G.REPLACED) is S.REPLACED
    assert next_state(state, G.SHUTDOWN) is S.STOPPED


def test_no_transition_leaves_a_terminal_state() -> None:
    leaving = [(s, g) for (s, g) in TRANSITIONS if s in TERMINAL_STATES]
    assert leaving == []
    for state in TERMINAL_STATES:
        for signal in Signal:
            assert next_state(state, signal) is None, (state, signal)


def test_every_signal_is_handled_by_some_state() -> None:
    handled = {signal for (_, signal) in TRANSITIONS}
    assert handled == set(Signal), set(Signal) - handled


def test_terminal_states_are_exactly_those_without_outgoing_transitions() -> None:
    without_exit = {state for state in State if not outgoing(state)}
    assert without_exit == set(TERMINAL_STATES)


def test_every_transition_lands_on_a_known_state() -> None:
    for key, target in TRANSITIONS.items():
        assert isinstance(target, State), key
        assert key[0] is not target, f"{key} loops back to its own state"


def test_every_state_is_reachable_from_waiting() -> None:
    seen = {S.WAITING}
    todo = deque([S.WAITING])
    while todo:
        for target in outgoing(todo.popleft()).values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(State)


def test_every_live_state_can_end() -> None:
    # From each live state some path leads to a terminal state without outside help.
    own_signals = set(Signal) - {G.REPLACED, G.SHUTDOWN}
    for state in LIVE_STATES:
        reached = {state}
        todo = deque([state])
        while todo:
            for signal, target in outgoing(todo.popleft()).items():
                if signal in own_signals and target not in reached:
                    reached.add(target)
                    todo.append(target)
        assert reached & TERMINAL_STATES, state


def test_the_table_is_the_one_the_protocol_describes() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_unhandled_signals_are_ignored_not_errors() -> None:
    # Late or repeated webhooks are normal: a second "joined" changes nothing.
    assert next_state(S.CONNECTED, G.JOINED) is None
    assert next_state(S.DISCONNECTED, G.LEFT) is None
    assert next_state(S.WAITING, G.SENT) is None


def test_the_diagram_names_every_state_and_signal() -> None:
    doc = fsm.__doc__ or ""
    for state in State:
        assert state.name in doc, state
    for signal in Signal:
        assert signal.name in doc, signal
