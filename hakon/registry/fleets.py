"""Fleets and their instances (seed 004): a fleet's capacity bounds its instances, an
instance moves between `stopped` and `running` only by start and stop."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hakon.errors import Conflict, InvalidRequest
from hakon.registry.resources import Kind, Record, Registry, now_ms
from hakon.timefmt import rfc3339

Name: Any = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Tags: Any = Field(default_factory=dict, description="Key-value tags; `?labels=` filters on them.")


class FleetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    description: str = Field("", max_length=4096)
    capacity: int = Field(gt=0, le=100_000, description="The most instances the fleet holds.")
    instance_type: str = Field("", max_length=128)
    tags: dict[str, str] = Tags


class InstanceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    fleet_id: str = Field(min_length=1, max_length=128, description="The fleet it belongs to.")
    instance_type: str = Field("", max_length=128, description="Default: the fleet's.")
    tags: dict[str, str] = Tags


# The only legal moves: action -> (states it may start from, state it leaves behind).
TRANSITIONS = {"start": (("stopped",), "running"), "stop": (("running",), "stopped")}


def instances_of(registry: Registry, fleet_id: str) -> list[Record]:
    return [r for r in registry.all("instance") if r.spec["fleet_id"] == fleet_id]


def _check_fleet(registry: Registry, spec: dict[str, Any], old: Record | None) -> None:
    if old is None:
        return
    count = len(instances_of(registry, old.id))
    if spec["capacity"] < count:
        raise Conflict(
            f"fleet {old.id!r} has {count} instances; its capacity cannot go below that",
            details={"field": "capacity", "instances": count},
        )


def _fleet_dependents(registry: Registry, fleet: Record, force: bool) -> list[Record]:
    members = instances_of(registry, fleet.id)
    if members and not force:
        raise Conflict(
            f"fleet {fleet.id!r} still has {len(members)} instances; delete them first "
            "or pass ?force=true to delete them with it",
            details={"instances": [r.id for r in members]},
        )
    return members


def _check_instance(registry: Registry, spec: dict[str, Any], old: Record | None) -> None:
    fleet = registry.find("fleet", spec["fleet_id"])
    if fleet is None:
        raise InvalidRequest(f"no fleet {spec['fleet_id']!r}", field="fleet_id")
    if old is not None and old.spec["fleet_id"] == fleet.id:
        return
    count = len(instances_of(registry, fleet.id))
    if count >= fleet.spec["capacity"]:
        raise Conflict(
            f"fleet {fleet.id!r} is full ({count} of {fleet.spec['capacity']} instances)",
            details={"field": "fleet_id", "capacity": fleet.spec["capacity"]},
        )
    if not spec.get("instance_type"):
        spec["instance_type"] = fleet.spec.get("instance_type", "")


FLEET = Kind(
    name="fleet",
    plural="fleets",
    model=FleetSpec,
    id_prefix="fleet-",
    labels_field="tags",
    check=_check_fleet,
    dependents=_fleet_dependents,
)
INSTANCE = Kind(
    name="instance",
    plural="instances",
    model=InstanceSpec,
    id_prefix="inst-",
    labels_field="tags",
    initial_state=lambda spec: {"status": "stopped"},
    check=_check_instance,
)


def transition(registry: Registry, instance_id: str, action: str) -> Record:
    """Start or stop an instance; 409 when it is not in a state the action leaves from."""
    allowed, target = TRANSITIONS[action]
    with registry.lock:
        record = registry.get("instance", instance_id)
        current = record.state.get("status")
        if current not in allowed:
            raise Conflict(
                f"instance {instance_id!r} is {current}; it can {action} only when "
                f"{' or '.join(allowed)}",
                details={"status": current, "action": action},
            )
        verb = "started" if action == "start" else "stopped"
        return registry.set_state(
            "instance", instance_id, {"status": target, f"{verb}_at": rfc3339(now_ms())}, event=verb
        )
