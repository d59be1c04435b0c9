"""One resource mechanism for every registry: clusters, nodes, workloads, functions,
fleets and instances are each a `Kind` declaration handed to one `Registry`.

A record is the user's `spec` (validated by the kind's pydantic model) plus the
server's `state` (status, heartbeats, deployments...). Records live in one
catalog table and, for reads, in memory: a registry holds thousands of
resources, not millions, and lists are served without touching DuckDB. Every
change takes the registry lock, checks uniqueness and the kind's cross-resource
rules, commits to the catalog, and only then changes memory and publishes the
event — so a failed write changes nothing.

`resource_version` counts changes to the spec; the server's own state changes
(a heartbeat, a start or stop) do not bump it, so a client's read-modify-write
of the spec is not refused because a node reported in meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from hakon.errors import Conflict, InvalidRequest, NotFound
from hakon.store.catalog import Catalog
from hakon.timefmt import rfc3339

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS registry_resources (
        kind VARCHAR NOT NULL, id VARCHAR NOT NULL, spec VARCHAR NOT NULL,
        state VARCHAR NOT NULL, version BIGINT NOT NULL,
        created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)""",
]
SORTABLE = ("name", "created_at", "updated_at", "status")

Publish = Callable[[str, dict[str, Any]], Any]


@dataclass
class Record:
    kind: str
    id: str
    spec: dict[str, Any]
    state: dict[str, Any]
    version: int
    created_ms: int
    updated_ms: int

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True)
class Kind:
    """What makes one resource different from the others; everything else is shared."""

    name: str  # singular, as in events: "fleet"
    plural: str  # as in paths: "fleets"
    model: type[BaseModel]  # the spec a client sends on create
    id_prefix: str = ""  # ids are prefix + a random hex; "" means the id is the name
    unique: Callable[[dict[str, Any]], str] = lambda spec: str(spec["name"])
    unique_field: str = "name"
    labels_field: str = "labels"
    initial_state: Callable[[dict[str, Any]], dict[str, Any]] = lambda spec: {"status": "active"}
    status_of: Callable[[Record], str] = lambda r: str(r.state.get("status", ""))
    # Cross-resource rules, checked under the registry lock: (registry, new spec, old record).
    check: Callable[[Registry, dict[str, Any], Record | None], None] | None = None
    # What else goes when a record is deleted: raise Conflict, or return records to cascade.
    dependents: Callable[[Registry, Record, bool], list[Record]] | None = None
    events: dict[str, str] = field(default_factory=dict)  # verb -> event type override

    def event(self, verb: str) -> str:
        return self.events.get(verb, f"{self.name}.{verb}")


def invalid_from(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """pydantic's first complaint as our 400, naming the field's path."""
    problems = []
    for err in exc.errors():
        path = prefix
        for part in err.get("loc", ()):
            path += f"[{part}]" if isinstance(part, int) else (("." if path else "") + str(part))
        problems.append({"field": path or "body", "message": err.get("msg", "")})
    first = problems[0]
    return InvalidRequest(
        f"{first['field']}: {first['message']}",
        field=first["field"],
        details={"reason": first["message"], "errors": problems},
    )


def validate(kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        model = kind.model.model_validate(spec)
    except ValidationError as exc:
        raise invalid_from(exc) from None
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


class Registry:
    def __init__(self, catalog: Catalog, kinds: Iterable[Kind], publish: Publish | None = None):
        self.catalog = catalog
        self.kinds = {k.name: k for k in kinds}
        self.publish: Publish = publish or (lambda event, data: None)
        self.lock = threading.RLock()
        self._records: dict[str, dict[str, Record]] = {k: {} for k in self.kinds}
        self._unique: dict[str, dict[str, str]] = {k: {} for k in self.kinds}  # key -> id
        catalog.ensure_schema(SCHEMA)
        rows = catalog.fetchall(
            "SELECT id, kind, spec, state, version, created_ms, updated_ms "
            "FROM registry_resources ORDER BY created_ms, id"
        )
        for record in catalog.readable("registry_resources", rows, _record):
            if record.kind in self._records:
                self._keep(record)

    # -- reads -------------------------------------------------------------------------

    def kind(self, name: str) -> Kind:
        return self.kinds[name]

    def get(self, kind: str, rid: str) -> Record:
        found = self._records[kind].get(rid)
        if found is None:
            raise NotFound(f"no {kind} {rid!r}", details={f"{kind}_id": rid})
        return found

    def find(self, kind: str, rid: str) -> Record | None:
        return self._records[kind].get(rid)

    def all(self, kind: str) -> list[Record]:
        return list(self._records[kind].values())

    def select(
        self,
        kind: str,
        *,
        labels: str | None = None,
        status: str | None = None,
        sort: str | None = None,
        where: Callable[[Record], bool] | None = None,
    ) -> list[Record]:
        k = self.kinds[kind]
        selector = parse_selector(labels)
        statuses = {s.strip() for s in status.split(",") if s.strip()} if status else None
        key, reverse = parse_sort(sort)
        out = [
            r
            for r in self._records[kind].values()
            if matches(selector, r.spec.get(k.labels_field) or {})
            and (statuses is None or k.status_of(r) in statuses)
            and (where is None or where(r))
        ]
        out.sort(key=lambda r: (_sort_value(k, r, key), r.created_ms, r.id), reverse=reverse)
        return out

    # -- writes ------------------------------------------------------------------------

    def create(
        self,
        kind: str,
        spec: dict[str, Any],
        state: dict[str, Any] | None = None,
        *,
        rid: str | None = None,
    ) -> Record:
        """`rid` names the id (a cluster registered by its agent); else one is made."""
        k = self.kinds[kind]
        spec = validate(k, spec)
        with self.lock:
            if rid is None:
                rid = k.id_prefix + uuid.uuid4().hex[:12] if k.id_prefix else k.unique(spec)
            if rid in self._records[kind]:
                raise Conflict(f"a {kind} with id {rid!r} exists", details={"field": "id"})
            self._check_unique(k, spec, None)
            if k.check is not None:
                k.check(self, spec, None)
            now = now_ms()
            record = Record(kind, rid, spec, state or k.initial_state(spec), 1, now, now)
            self.catalog.execute(
                "INSERT INTO registry_resources VALUES (?, ?, ?, ?, ?, ?, ?)", _row(record)
            )
            self._keep(record)
            self._emit(k, "created", record)
        return record

    def update(
        self,
        kind: str,
        rid: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
        replace: bool = False,
    ) -> Record:
        """Merge `changes` into the spec (or replace it), refusing a stale version."""
        k = self.kinds[kind]
        with self.lock:
            old = self.get(kind, rid)
            check_version(old, expected_version)
            if not isinstance(changes, dict):
                raise InvalidRequest("the body must be a JSON object", field="body")
            spec = validate(k, changes if replace else {**old.spec, **changes})
            if not k.id_prefix and k.unique(spec) != rid:
                raise InvalidRequest(
                    f"the {k.unique_field} of a {kind} cannot change (it is its id)",
                    field=k.unique_field,
                )
            self._check_unique(k, spec, old)
            if k.check is not None:
                k.check(self, spec, old)
            if spec == old.spec:
                return old
            record = Record(kind, rid, spec, old.state, old.version + 1, old.created_ms, now_ms())
            self._save(record)
            self._emit(k, "updated", record)
        return record

    def set_state(
        self,
        kind: str,
        rid: str,
        changes: dict[str, Any],
        *,
        event: str | None = None,
        persist: bool = True,
    ) -> Record:
        """Change server-managed state (status, heartbeat, deployments): no version bump."""
        k = self.kinds[kind]
        with self.lock:
            old = self.get(kind, rid)
            record = Record(kind, rid, old.spec, {**old.state, **changes}, old.version,
                            old.created_ms, now_ms())  # fmt: skip
            if persist:
                self._save(record)
            self._records[kind][rid] = record
            if event is not None:
                self._emit(k, event, record)
        return record

    def save_states(self, records: list[Record]) -> None:
        """Persist in-memory state changes made with `persist=False`, in one transaction."""
        if not records:
            return
        with self.lock, self.catalog.transaction() as con:
            for r in records:
                current = self._records[r.kind].get(r.id)
                if current is not None:
                    con.execute(
                        "UPDATE registry_resources SET state = ?, updated_ms = ? "
                        "WHERE kind = ? AND id = ?",
                        [json.dumps(current.state), current.updated_ms, r.kind, r.id],
                    )

    def delete(
        self, kind: str, rid: str, *, expected_version: int | None = None, force: bool = False
    ) -> Record:
        k = self.kinds[kind]
        with self.lock:
            record = self.get(kind, rid)
            check_version(record, expected_version)
            cascade = k.dependents(self, record, force) if k.dependents is not None else []
            with self.catalog.transaction() as con:
                for r in [*cascade, record]:
                    con.execute(
                        "DELETE FROM registry_resources WHERE kind = ? AND id = ?", [r.kind, r.id]
                    )
            for r in [*cascade, record]:
                self._records[r.kind].pop(r.id, None)
                self._unique[r.kind].pop(self.kinds[r.kind].unique(r.spec), None)
                self._emit(self.kinds[r.kind], "deleted", r)
        return record

    # -- internals ---------------------------------------------------------------------

    def _check_unique(self, k: Kind, spec: dict[str, Any], old: Record | None) -> None:
        key = k.unique(spec)
        holder = self._unique[k.name].get(key)
        if holder is not None and (old is None or holder != old.id):
            raise Conflict(
                f"a {k.name} with {k.unique_field} {key!r} exists ({holder})",
                details={"field": k.unique_field, "existing_id": holder},
            )

    def _keep(self, record: Record) -> None:
        k = self.kinds[record.kind]
        old = self._records[record.kind].get(record.id)
        if old is not None:
            self._unique[record.kind].pop(k.unique(old.spec), None)
        self._records[record.kind][record.id] = record
        self._unique[record.kind][k.unique(record.spec)] = record.id

    def _save(self, record: Record) -> None:
        self.catalog.execute(
            "UPDATE registry_resources SET spec = ?, state = ?, version = ?, updated_ms = ? "
            "WHERE kind = ? AND id = ?",
            [json.dumps(record.spec), json.dumps(record.state), record.version,
             record.updated_ms, record.kind, record.id],
        )  # fmt: skip
        self._keep(record)

    def _emit(self, k: Kind, verb: str, record: Record) -> None:
        self.publish(k.event(verb), {f"{k.name}_id": record.id, **public(record)})


def public(record: Record) -> dict[str, Any]:
    """The record as the API shows it: spec, server state, times and version."""
    return {
        "id": record.id,
        **record.spec,
        **record.state,
        "resource_version": record.version,
        "created_at": rfc3339(record.created_ms),
        "updated_at": rfc3339(record.updated_ms),
    }


def check_version(record: Record, expected: int | None) -> None:
    if expected is not None and expected != record.version:
        raise Conflict(
            f"{record.kind} {record.id!r} was changed meanwhile: it is at version "
            f"{record.version}, the request expected {expected}; read it again and retry",
            details={"field": "resource_version", "current_version": record.version},
        )


def parse_if_match(header: str | None) -> int | None:
    """`If-Match: "3"` (or W/"3", or 3); `*` or no header means no precondition."""
    if header is None or header.strip() in ("", "*"):
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidRequest(f"If-Match must be an ETag such as \"3\", not {header[:40]!r}",
                             field="If-Match")  # fmt: skip
    return int(text)


# -- label selectors and sorting --------------------------------------------------------

Selector = list[tuple[str, str, str]]  # (key, op, value); ops: =, !=, exists, !exists


def parse_selector(text: str | None) -> Selector:
    """`env=prod,team!=api,gpu,!legacy` (Kubernetes' equality-based selector syntax)."""
    if not text:
        return []
    terms: Selector = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            op = "!="
        elif "=" in term:
            key, value = term.split("==" if "==" in term else "=", 1)
            op = "="
        elif term.startswith("!"):
            key, value, op = term[1:], "", "!exists"
        else:
            key, value, op = term, "", "exists"
        key = key.strip()
        if not key or len(key) > 256 or any(c in key for c in "=!, "):
            raise InvalidRequest(f"bad label selector term {term[:80]!r}", field="labels")
        terms.append((key, op, value.strip()))
    return terms


def matches(selector: Selector, labels: dict[str, Any]) -> bool:
    for key, op, value in selector:
        have = labels.get(key)
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "exists" and have is None:
            return False
        if op == "!exists" and have is not None:
            return False
    return True


def parse_sort(text: str | None) -> tuple[str, bool]:
    """`name`, `-created_at` or `created_at:desc` -> (field, reverse)."""
    if not text:
        return "created_at", False
    value = text.strip()
    reverse = value.startswith("-")
    value = value.lstrip("-+")
    if ":" in value:
        value, direction = value.split(":", 1)
        if direction not in ("asc", "desc"):
            raise InvalidRequest("sort direction must be asc or desc", field="sort")
        reverse = direction == "desc"
    if value not in SORTABLE:
        raise InvalidRequest(f"sort by one of {', '.join(SORTABLE)}, not {value!r}", field="sort")
    return value, reverse


def _sort_value(k: Kind, r: Record, key: str) -> Any:
    if key == "name":
        return str(r.spec.get("name", r.id))
    if key == "status":
        return k.status_of(r)
    return r.created_ms if key == "created_at" else r.updated_ms


def page_of(items: list[Any], page: int, limit: int) -> tuple[list[Any], dict[str, int]]:
    """One page and seed 001's pagination metadata; a page past the end is empty."""
    total = len(items)
    start = (page - 1) * limit
    pages = (total + limit - 1) // limit
    return items[start : start + limit], {
        "total": total,
        "page": page,
        "limit": limit,
        "pages": pages,
    }


def _record(row: tuple[Any, ...]) -> Record:
    spec, state = json.loads(row[2]), json.loads(row[3])
    return Record(row[1], row[0], dict(spec), dict(state), *row[4:])


def _row(r: Record) -> list[Any]:
    return [r.kind, r.id, json.dumps(r.spec), json.dumps(r.state), r.version, r.created_ms,
            r.updated_ms]  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)
