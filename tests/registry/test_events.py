"""Registry events reach a real loopback webhook receiver, signed, in seed 004's envelope."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
from alerting.receiver import Receiver
from serverproc import wait_for

EVENTS = [
    "cluster.created", "cluster.updated", "cluster.deleted",
    "node.registered", "node.offline", "node.deleted",
    "workload.created", "workload.updated", "workload.deleted", "workload.deployed",
    "function.created", "function.updated", "function.deleted",
    "fleet.created", "fleet.updated", "fleet.deleted",
    "instance.created", "instance.started", "instance.stopped", "instance.deleted",
]  # fmt: skip


def test_every_registry_change_is_a_signed_event(api: httpx.Client) -> None:
    with Receiver() as receiver:
        hook = api.post("/api/v1/webhooks",
                        json={"url": receiver.url, "events": EVENTS, "secret": "reg"})  # fmt: skip
        assert hook.status_code == 201, hook.text
        ids: dict[str, str] = {}

        def make(kind: str, body: dict[str, Any]) -> str:
            response = api.post(f"/api/v1/{kind}", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        ids["cluster"] = make("clusters", {"name": "ev-cluster"})
        api.patch(f"/api/v1/clusters/{ids['cluster']}", json={"region": "eu"})
        api.delete(f"/api/v1/clusters/{ids['cluster']}")
        ids["node"] = make("nodes", {"name": "ev-node", "address": "10.1.1.1"})
        ids["workload"] = make("workloads", {"name": "ev-app", "image": "a:1"})
        api.put(f"/api/v1/workloads/{ids['workload']}", json={"replicas": 2})
        api.post(f"/api/v1/workloads/{ids['workload']}/deploy", json={"nodes": [ids["node"]]})
        api.delete(f"/api/v1/workloads/{ids['workload']}")
        ids["function"] = make("functions", {"name": "ev-fn", "runtime": "go119",
                                             "handler": "Handler"})  # fmt: skip
        api.patch("/api/v1/functions/ev-fn", json={"maxReplicas": 3})
        api.delete("/api/v1/functions/ev-fn")
        ids["fleet"] = make("fleets", {"name": "ev-fleet", "capacity": 2})
        api.patch(f"/api/v1/fleets/{ids['fleet']}", json={"capacity": 3})
        ids["instance"] = make("instances", {"name": "ev-i", "fleet_id": ids["fleet"]})
        api.post(f"/api/v1/instances/{ids['instance']}/start")
        api.post(f"/api/v1/instances/{ids['instance']}/stop")
        api.delete(f"/api/v1/fleets/{ids['fleet']}", params={"force": "true"})
        # The node never beats: offline after node_offline_after (2 s), then deleted.
        wait_for(lambda: receiver.events("node.offline"), timeout=15)
        api.delete(f"/api/v1/nodes/{ids['node']}")

        def mine() -> dict[str, dict[str, Any]]:
            seen = {}
            for headers, body in receiver.requests:
                event = httpx.Response(200, content=body).json()
                kind = event["type"].split(".")[0]
                if event["data"].get(f"{kind}_id") == ids.get(kind):
                    seen[event["type"]] = event
                    signed = headers["X-Hakon-Timestamp"].encode() + b"." + body
                    mac = hmac.new(b"reg", signed, hashlib.sha256).hexdigest()
                    assert headers["X-Hakon-Signature"] == "sha256=" + mac
            return seen

        def complete() -> dict[str, dict[str, Any]] | None:
            got = mine()
            return got if set(got) >= set(EVENTS) else None

        seen = wait_for(complete, timeout=15)
        created = seen["fleet.created"]
        assert set(created) == {"id", "type", "data", "timestamp"}
        assert created["id"].startswith("evt_") and created["timestamp"].endswith("Z")
        assert created["data"]["fleet_id"] == ids["fleet"]
        assert created["data"]["name"] == "ev-fleet" and created["data"]["capacity"] == 2
        assert seen["fleet.updated"]["data"]["capacity"] == 3
        assert seen["instance.started"]["data"]["status"] == "running"
        assert seen["workload.deployed"]["data"]["nodes"] == [ids["node"]]
        assert seen["node.offline"]["data"]["status"] == "offline"
        api.delete(f"/api/v1/webhooks/{hook.json()['id']}")
