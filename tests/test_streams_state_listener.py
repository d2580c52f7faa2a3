"""``KafkaStreams.state()`` and ``set_state_listener(fn(new_state, old_state))``: Kafka's
KafkaStreams.State names, only its valid transitions, and the listener set before start()."""

from __future__ import annotations

import threading
import time

import pytest

from kcli import Admin, Producer
from kcli.streams import KafkaStreams, StreamsBuilder
from kcli.streams.runtime import IllegalStateError, State


@pytest.fixture
def topics(data_dir):
    with Admin(data_dir, create=True) as admin:
        admin.create_topic("in", 2)
        admin.create_topic("out", 2)
    return data_dir


def _passthrough(mapper=lambda v: v):
    b = StreamsBuilder()
    b.stream("in").map_values(mapper).to("out")
    return b.build()


def _streams(data_dir, topology=None, **config) -> KafkaStreams:
    return KafkaStreams(topology or _passthrough(), {"application.id": "app", "commit.interval.ms": 50,
                                                     "session.timeout.ms": 6000, **config}, data_dir=data_dir)


def _wait(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out {predicate.__defaults__}"
        time.sleep(0.01)


def test_state_listener_hears_created_rebalancing_running_then_pending_shutdown_not_running(topics):
    streams = _streams(topics)
    heard = []
    streams.set_state_listener(lambda new, old: heard.append((old, new)))
    assert streams.state() is KafkaStreams.State.CREATED
    streams.start()
    streams.wait_until_running(10)
    assert streams.state() is State.RUNNING and streams.state == "RUNNING"  # the accessor, and the old attribute
    assert streams.close()
    assert streams.state() is State.NOT_RUNNING
    assert heard == [(State.CREATED, State.REBALANCING), (State.REBALANCING, State.RUNNING),
                     (State.RUNNING, State.PENDING_SHUTDOWN), (State.PENDING_SHUTDOWN, State.NOT_RUNNING)]
    assert all(isinstance(s, State) for pair in heard for s in pair)


def test_set_state_listener_after_start_is_kafkas_illegal_state_exception(topics):
    streams = _streams(topics)
    streams.start()
    try:
        with pytest.raises(IllegalStateError, match=r"^IllegalStateException: Can only set StateListener before "
                                                    r"calling start\(\)\. Current state is: (REBALANCING|RUNNING)$"):
            streams.set_state_listener(lambda new, old: None)
        with pytest.raises(IllegalStateError, match="cannot re-start"):
            streams.start()
    finally:
        streams.close()
    with pytest.raises(IllegalStateError, match="The client is either already started or already stopped, cannot "
                                                "re-start"):
        streams.start()


def test_a_dying_stream_thread_goes_pending_error_then_error(topics):
    def boom(v):
        raise ValueError("bad record")

    streams = _streams(topics, _passthrough(boom))
    heard = []
    streams.set_state_listener(lambda new, old: heard.append(new))
    streams.set_uncaught_exception_handler(lambda exc: None)
    with Producer({}, data_dir=topics) as p:
        p.send("in", b"x", partition=0)
        p.flush()
    streams.start()
    _wait(lambda: streams.state() is State.ERROR)
    assert heard[-2:] == [State.PENDING_ERROR, State.ERROR]
    assert isinstance(streams.error, ValueError)
    assert streams.close()  # already final: nothing more
    assert streams.state() is State.ERROR and heard[-1] is State.ERROR


def test_close_before_start_goes_pending_shutdown_then_not_running_and_twice_is_harmless(topics):
    streams = _streams(topics)
    heard = []
    streams.set_state_listener(lambda new, old: heard.append((old, new)))
    assert streams.close() and streams.close()
    assert heard == [(State.CREATED, State.PENDING_SHUTDOWN), (State.PENDING_SHUTDOWN, State.NOT_RUNNING)]


def test_only_kafkas_transitions_are_valid():
    valid = {
        State.CREATED: {State.REBALANCING, State.PENDING_SHUTDOWN},
        State.REBALANCING: {State.RUNNING, State.PENDING_SHUTDOWN, State.PENDING_ERROR},
        State.RUNNING: {State.REBALANCING, State.RUNNING, State.PENDING_SHUTDOWN, State.PENDING_ERROR},
        State.PENDING_SHUTDOWN: {State.NOT_RUNNING},
        State.NOT_RUNNING: set(),
        State.PENDING_ERROR: {State.ERROR},
        State.ERROR: set(),
    }
    assert [s.name for s in State] == ["CREATED", "REBALANCING", "RUNNING", "PENDING_SHUTDOWN", "NOT_RUNNING",
                                       "PENDING_ERROR", "ERROR"]
    for old in State:
        assert {new for new in State if old.is_valid_transition(new)} == valid[old]
    assert State.RUNNING.is_running_or_rebalancing() and State.PENDING_ERROR.is_shutting_down()
    assert State.ERROR.has_completed_shutdown() and State.CREATED.has_not_started()


def test_an_invalid_transition_is_refused_with_kafkas_message(topics):
    streams = _streams(topics)
    with pytest.raises(IllegalStateError, match="Unexpected state transition from CREATED to RUNNING"):
        streams._set_state(State.RUNNING)
    assert streams.state() is State.CREATED
    # the moves Kafka ignores: no change, no exception, nothing heard
    heard = []
    streams.set_state_listener(lambda new, old: heard.append(new))
    streams.close()
    assert streams._set_state(State.PENDING_SHUTDOWN) is False and streams.state() is State.NOT_RUNNING
    assert heard == [State.PENDING_SHUTDOWN, State.NOT_RUNNING]


def test_a_second_instance_joining_moves_the_first_through_rebalancing_back_to_running(topics):
    first, second = _streams(topics), _streams(topics)
    heard = []
    lock = threading.Lock()

    def listener(new, old):
        with lock:
            heard.append(new)

    first.set_state_listener(listener)
    first.start()
    try:
        first.wait_until_running(10)
        second.start()
        second.wait_until_running(10)
        _wait(lambda: heard.count(State.RUNNING) >= 2 and first.state() is State.RUNNING)
    finally:
        second.close()
        first.close()
    assert heard[:4] == [State.REBALANCING, State.RUNNING, State.REBALANCING, State.RUNNING]
