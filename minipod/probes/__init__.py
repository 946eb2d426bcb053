"""Probes and lifecycle hooks, run by the supervisor itself.

A check (httpGet, tcpSocket, grpc, exec, sleep) is made by the pod's
supervisor, not by a binary inside the image: network checks open their
socket inside the pod's network namespace, so they work on images with no
curl, wget or nc, and on pods with no IP. Every check is non-blocking and
runs in the supervisor's one ``selectors`` loop.

* ``result``   — what one attempt of a check concluded;
* ``http``, ``grpc`` — the byte-level conversations (pure, no sockets);
* ``checks``   — one attempt of a handler, driven by the loop;
* ``schedule`` — the probe rules: delays, periods, thresholds.
"""
