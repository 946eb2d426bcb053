"""The examples/ manifests run with the demo image and do what they say."""

from __future__ import annotations

import os
import time

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")


def _until(fn, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_kubia_answers_with_its_hostname(mpi):
    pod = mpi.runtime().run(os.path.join(EXAMPLES, "kubia.yaml"))
    pod.wait_ready(10)
    res = _until(lambda: (r := pod.exec("kubia", ["wget", "-q", "-O", "-", "http://localhost:8080/"]))
                 .returncode == 0 and r)
    assert res and res.text == "You've hit kubia\n"
    pod.remove(timeout=0)


def test_sidecar_ships_the_apps_log(mpi):
    pod = mpi.runtime().run(os.path.join(EXAMPLES, "sidecar-logs.yaml"))
    pod.wait_ready(10)
    lines = _until(lambda: [line for line in pod.logs("shipper") if "request 2 served" in line], timeout=8)
    assert lines, list(pod.logs("shipper"))
    pod.remove(timeout=0)


def test_init_container_prepares_content(mpi):
    pod = mpi.runtime().run(os.path.join(EXAMPLES, "init-content.yaml"))
    pod.wait_ready(10)
    assert list(pod.logs("fetch-content")) == ["content ready\n"]
    res = _until(lambda: (r := pod.exec("web", ["wget", "-q", "-O", "-", "http://localhost:8080/"]))
                 .returncode == 0 and r)
    assert res and "Prepared by the init container" in res.text
    pod.remove(timeout=0)


def test_adapter_answers_health_from_app_metrics(mpi):
    pod = mpi.runtime().run(os.path.join(EXAMPLES, "adapter-health.yaml"))
    pod.wait_ready(10)
    res = _until(lambda: (r := pod.exec("adapter", ["wget", "-q", "-O", "-", "http://localhost:9090/cgi-bin/health"]))
                 .returncode == 0 and "healthy:" in r.text and r)
    assert res and res.text.startswith("healthy: app reports app_up 1"), res and res.text
    pod.remove(timeout=0)
