"""A pod's events, as kubelet records them for ``kubectl describe``.

Each event has a type (Normal or Warning), a reason (Created, Started,
Killing, BackOff, Unhealthy, …), a message and the container it is about.
A repeat of the same event is folded into the earlier one (its count and
last time go up), as the API server aggregates them, so a probe that fails
every second for an hour is one line "(x3600 over 1h)", not 3600.
"""

from __future__ import annotations

from .podstatus import now_rfc3339

MAX_EVENTS = 200  # the oldest go first, as events expire on a cluster


class EventLog:
    def __init__(self, events: list[dict] | None = None):
        self.events: list[dict] = events if events is not None else []

    def add(self, kind: str, reason: str, message: str, obj: str = "") -> dict:
        """Record an event about ``obj`` (a container name, or "" for the pod)."""
        stamp = now_rfc3339()
        for i, event in enumerate(self.events):
            if (event["type"], event["reason"], event["object"], event["message"]) == (kind, reason, obj, message):
                event["count"] += 1
                event["lastTimestamp"] = stamp
                self.events.append(self.events.pop(i))  # newest last
                return event
        event = {"type": kind, "reason": reason, "message": message, "object": obj, "count": 1,
                 "firstTimestamp": stamp, "lastTimestamp": stamp}
        self.events.append(event)
        del self.events[:-MAX_EVENTS]
        return event
