"""A pod's event log: repeats folded as the API server aggregates them, and a cap."""

from __future__ import annotations

import pytest

from minipod import events
from minipod.events import MAX_EVENTS, EventLog


@pytest.fixture
def clock(monkeypatch):
    """A settable clock for the log's timestamps (whole seconds otherwise)."""
    stamps = {"now": "2026-01-01T00:00:00Z"}
    monkeypatch.setattr(events, "now_rfc3339", lambda: stamps["now"])
    return stamps


def test_a_new_event(clock):
    log = EventLog()
    event = log.add("Normal", "Started", "Started container app", "app")
    assert event == {"type": "Normal", "reason": "Started", "message": "Started container app", "object": "app",
                     "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    assert log.events == [event]


def test_a_pod_event_has_an_empty_object(clock):
    assert EventLog().add("Normal", "Scheduled", "on this host")["object"] == ""


def test_a_repeat_is_folded_counted_stamped_and_moved_last(clock):
    log = EventLog()
    log.add("Warning", "Unhealthy", "Liveness probe failed: refused", "app")
    log.add("Normal", "Pulled", "already present", "app")
    clock["now"] = "2026-01-01T00:01:00Z"
    again = log.add("Warning", "Unhealthy", "Liveness probe failed: refused", "app")
    assert [e["reason"] for e in log.events] == ["Pulled", "Unhealthy"]
    assert again is log.events[-1]
    assert again["count"] == 2
    assert again["firstTimestamp"] == "2026-01-01T00:00:00Z" and again["lastTimestamp"] == "2026-01-01T00:01:00Z"
    clock["now"] = "2026-01-01T00:02:00Z"
    log.add("Warning", "Unhealthy", "Liveness probe failed: refused", "app")
    assert len(log.events) == 2 and log.events[-1]["count"] == 3
    assert log.events[-1]["lastTimestamp"] == "2026-01-01T00:02:00Z"


@pytest.mark.parametrize("differs", [
    ("Normal", "Unhealthy", "probe failed", "app"),       # type
    ("Warning", "BackOff", "probe failed", "app"),        # reason
    ("Warning", "Unhealthy", "probe failed again", "app"),  # message
    ("Warning", "Unhealthy", "probe failed", "sidecar"),  # object
    ("Warning", "Unhealthy", "probe failed", ""),         # the pod itself
])
def test_events_differing_in_any_field_are_not_folded(clock, differs):
    log = EventLog()
    log.add("Warning", "Unhealthy", "probe failed", "app")
    log.add(*differs)
    assert len(log.events) == 2 and [e["count"] for e in log.events] == [1, 1]


def test_the_log_keeps_the_newest_max_events(clock):
    log = EventLog()
    for i in range(MAX_EVENTS + 25):
        log.add("Normal", "Started", f"event {i}", "app")
    assert len(log.events) == MAX_EVENTS
    assert log.events[0]["message"] == "event 25" and log.events[-1]["message"] == f"event {MAX_EVENTS + 24}"


def test_folding_into_a_full_log_keeps_its_size_and_the_event(clock):
    log = EventLog()
    for i in range(MAX_EVENTS):
        log.add("Normal", "Started", f"event {i}", "app")
    log.add("Normal", "Started", "event 0", "app")  # the oldest repeats: it is news again, not dropped
    assert len(log.events) == MAX_EVENTS
    assert log.events[-1]["message"] == "event 0" and log.events[-1]["count"] == 2
    assert log.events[0]["message"] == "event 1"


def test_the_log_works_on_the_list_it_was_given(clock):
    # The supervisor keeps its state's "events" list and saves it as is.
    kept: list[dict] = [{"type": "Normal", "reason": "Pulled", "message": "present", "object": "app", "count": 4,
                         "firstTimestamp": "2025-12-31T00:00:00Z", "lastTimestamp": "2025-12-31T00:00:00Z"}]
    log = EventLog(kept)
    log.add("Normal", "Pulled", "present", "app")
    assert log.events is kept and len(kept) == 1 and kept[0]["count"] == 5
    assert kept[0]["firstTimestamp"] == "2025-12-31T00:00:00Z"
    assert EventLog().events == [] and EventLog().events is not EventLog().events


def test_real_timestamps_are_rfc3339_seconds():
    from minipod.podstatus import parse_rfc3339

    event = EventLog().add("Normal", "Started", "x")
    assert parse_rfc3339(event["firstTimestamp"]) is not None
