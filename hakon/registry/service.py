"""The registries as one service: the six kinds on one `Registry`, with the heartbeat
sweeper, the HakonGo cluster observer, the function invoker and metric queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hakon.query.engine import Engine
from hakon.registry.clusters import CLUSTER, ClusterObserver, node_counts, usage
from hakon.registry.edge import NODE, WORKLOAD
from hakon.registry.fleets import FLEET, INSTANCE
from hakon.registry.functions import FunctionSettings, function_kind
from hakon.registry.heartbeats import Heartbeats
from hakon.registry.invoke import Invoker
from hakon.registry.resources import Publish, Registry, now_ms
from hakon.store.catalog import Catalog
from hakon.store.interface import SampleBatch


class Registries:
    def __init__(
        self,
        catalog: Catalog,
        engine: Engine,
        append: Callable[[SampleBatch], None],
        publish: Publish,
        *,
        offline_after_s: float,
        functions: FunctionSettings,
    ) -> None:
        kinds = [CLUSTER, NODE, WORKLOAD, function_kind(functions), FLEET, INSTANCE]
        self.registry = Registry(catalog, kinds, publish)
        self.engine = engine
        self.append = append
        self.function_settings = functions
        self.heartbeats = Heartbeats(self.registry, offline_after_s)
        self.clusters = ClusterObserver(self.registry)
        self.invoker = Invoker(self.registry, functions, append)

    def start(self) -> Registries:
        self.heartbeats.start()
        return self

    def stop(self) -> None:
        self.heartbeats.stop()

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query at now: (labels, value) per present series."""
        return self.engine.instant_rows(expr, now_ms())

    def cluster_node_counts(self) -> dict[str, dict[str, int]]:
        return node_counts(self.query)

    def cluster_usage(self, cluster_id: str) -> dict[str, Any]:
        return usage(self.query, cluster_id)

    def delete(
        self, kind: str, rid: str, *, expected_version: int | None = None, force: bool = False
    ) -> None:
        self.registry.delete(kind, rid, expected_version=expected_version, force=force)
        if kind == "cluster":
            self.clusters.forget(rid)  # its agent's next payload registers it again
        elif kind == "function":
            self.invoker.warmth.forget(rid)

    def node_name(self, node_id: str) -> str:
        node = self.registry.find("node", node_id)
        return str(node.spec["name"]) if node is not None else node_id
