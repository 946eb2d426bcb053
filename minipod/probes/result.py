"""What one attempt of a probe or hook handler concluded."""

from __future__ import annotations

from ..record import Record


class Result(Record):
    """``ok`` or not, with kubelet's kind of message for the event log.

    ``warning`` carries what kubelet reports as a ProbeWarning: the check
    counted as a success, but something about it deserves a look (a
    redirect to another host that was not followed, say).
    """

    ok: bool
    message: str = ""
    warning: str = ""


class Exchange:
    """One request and its answer over a connected stream socket, as bytes.

    The socket work (connect inside the pod's network namespace, TLS,
    timeouts) belongs to the driver in ``checks``; an exchange only says
    what to send and judges what came back, so it is testable without a
    network.
    """

    def opening(self) -> bytes:
        """The bytes to send as soon as the connection is up."""
        raise NotImplementedError

    def feed(self, data: bytes) -> tuple[bytes, Result | None]:
        """Take bytes that arrived (``b""`` means the peer closed): return
        bytes to send back (often none) and the verdict once there is one."""
        raise NotImplementedError
