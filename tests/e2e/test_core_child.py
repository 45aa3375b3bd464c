"""The embedded shape with the core in a child process (`CONSENTGATE_CORE_PROCESS=true`): events
reach profiles, a flag flips at once after an identify (the child tells the gateway what it
changed), a killed child is started again, and no child outlives a killed gateway."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.flag_probe import PERSONAL, PRO_FLAG, variant
from tests.e2e.server import Gateway
from tests.helpers import wait_for


def _children(pid: int) -> list[int]:
    """The processes `pid` started, from any of its threads."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status  # a zombie has exited


def test_the_core_child_applies_events_tells_the_gateway_and_dies_with_it(
    tmp_path: Path,
) -> None:
    gateway = Gateway(tmp_path, CONSENTGATE_CORE_PROCESS="true")
    source = gateway.cli("sources", "create", "app", "--jurisdiction", "gdpr")
    write, server = source["write_key"], source["server_key"]
    admin = gateway.cli("tokens", "create", "--role", "admin")["token"]
    bearer = {"Authorization": f"Bearer {server}"}
    gateway.start()
    try:
        assert gateway.process is not None
        pid = gateway.process.pid
        children = wait_for(lambda: _children(pid) or None)
        assert len(children) == 1
        saved = httpx.put(
            f"{gateway.url}/v1/flags/pro-onboarding",
            json=PRO_FLAG,
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert saved.status_code == 200, saved.text
        consent = {"purposes": {"analytics": True, "personalization": True}}
        answer = httpx.put(
            f"{gateway.url}/v1/consent/ana",
            json={**consent, "policy_version": "1"},
            headers=bearer,
        )
        assert answer.status_code == 200, answer.text
        profile = f"{gateway.url}/v1/profiles/ana"

        def identify(plan: str) -> None:
            traits = {"userId": "ana", "traits": {"plan": plan}, "context": PERSONAL}
            sent = httpx.post(f"{gateway.url}/v1/identify", auth=(write, ""), json=traits)
            assert sent.status_code == 200, sent.text

        identify("basic")  # applied by the child: the profile appears
        wait_for(lambda: httpx.get(profile, headers=bearer).status_code == 200 or None)
        assert variant(gateway, server, "ana") == "off"  # the gateway now holds the view
        identify("pro")
        started = time.monotonic()
        wait_for(lambda: variant(gateway, server, "ana") == "on" or None, timeout=5.0)
        assert time.monotonic() - started < 2.0  # told at once, not when the view expires

        os.kill(children[0], signal.SIGKILL)  # a crashed child is started again
        successor = wait_for(lambda: [c for c in _children(pid) if c != children[0]] or None)
        identify("basic")  # accepted meanwhile, applied by the new child
        wait_for(lambda: variant(gateway, server, "ana") == "off" or None)

        gateway.kill()  # -9: no shutdown hook stops the child
        wait_for(lambda: not _alive(successor[0]) or None, timeout=5.0)
    finally:
        gateway.stop()
