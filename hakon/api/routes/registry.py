"""Routes of the six registries: one builder makes the CRUD routes of every kind, from its
`Kind` and a `Presentation` (the seed's list envelope and delete answer); the few
actions beyond CRUD follow.

Bodies of create and update are taken as plain JSON and validated by the registry
against the kind's model, so a bad field is named as seed 004 names it
(`{"field": "capacity", "reason": ...}`); the OpenAPI document still shows each
kind's schema (`request_schemas`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from hakon.api.auth import require, runtime_of
from hakon.errors import InvalidRequest
from hakon.registry import clusters as cluster_views
from hakon.registry import edge, fleets, functions
from hakon.registry.invoke import event_object
from hakon.registry.resources import Record, page_of, parse_if_match, public
from hakon.registry.service import Registries

router = APIRouter(prefix="/api/v1", tags=["registry"])
make_model: Any = create_model  # models built from each kind's declaration
read = [Depends(require("registry:read"))]
write = [Depends(require("registry:write"))]

ID = Path(min_length=1, max_length=253)
# Error statuses a route can answer besides the common ones (openapi.py adds the body).
ONE: dict[int | str, Any] = {404: {"description": "Not found."}}
CHANGE: dict[int | str, Any] = {**ONE, 409: {"description": "Conflict."}}
IF_MATCH = Header(None, description='The resource_version as an ETag ("3"); stale -> 409.')


def registries_of(request: Request) -> Registries:
    return runtime_of(request).registries


class ServerFields(BaseModel):
    id: str
    resource_version: int = Field(description="Bumped by every change of the spec.")
    created_at: str
    updated_at: str


class Pagination(BaseModel):
    total: int
    page: int
    limit: int
    pages: int


class Success(BaseModel):
    success: bool
    message: str


# -- the server-managed fields each kind shows beside its spec ----------------------------


class NodeCounts(BaseModel):
    total: int
    ready: int
    master: int
    worker: int


class NetworkIO(BaseModel):
    ingress: str | None
    egress: str | None


class ClusterUsage(BaseModel):
    cpu_usage: str | None = Field(description="Percent of capacity, e.g. 45%.")
    memory_usage: str | None
    disk_usage: str | None
    network_io: NetworkIO


class ScaleRequest(BaseModel):
    replicas: int
    requested_at: str


class ClusterState(BaseModel):
    status: Literal["pending", "active"] = Field(
        description="pending until the cluster's first HakonGo payload."
    )
    nodes: NodeCounts = Field(description="From the latest HakonGo node payloads.")
    metrics: ClusterUsage | None = Field(None, description="Only on GET of one cluster.")
    scale_requests: dict[str, ScaleRequest] | None = None


class NodeState(BaseModel):
    status: Literal["registered", "active", "inactive", "maintenance", "offline"]
    last_heartbeat: str | None
    registered_at: str


class Deployment(BaseModel):
    deployment_id: str
    target_nodes: list[str]
    strategy: str
    status: str
    started_at: str


class WorkloadState(BaseModel):
    status: Literal["created", "deploying"]
    nodes: list[str] = Field(description="Nodes of the latest deployment.")
    deployments: list[Deployment] | None = Field(None, description="Newest first, up to 20.")


class FunctionStatus(BaseModel):
    state: Literal["running", "pending"] = Field(description="pending: no endpoint to invoke.")
    replicas: int = Field(description="minReplicas, or 1 while warm after an invocation.")
    endpoint: str | None = None
    lastDeployment: str


class FunctionState(BaseModel):
    status: FunctionStatus


class FleetState(BaseModel):
    status: Literal["active"]
    instances: int = Field(description="How many instances the fleet holds.")


class InstanceState(BaseModel):
    status: Literal["stopped", "running"]
    started_at: str | None = None
    stopped_at: str | None = None


# -- presentation -----------------------------------------------------------------------


Decorate = Callable[["Registries", list[Record], list[dict[str, Any]]], None]


@dataclass(frozen=True)
class Presentation:
    kind: str
    plural: str
    spec: type[BaseModel]
    state: type[BaseModel]
    list_shape: Literal["pagination", "total", "array"]
    delete_shape: Literal["message", "no_content"]
    put_replaces: bool = False  # seed 003: PUT takes the whole function
    # What the kind shows beside its record: in lists and on GET (`extra`), on GET only.
    extra: Decorate | None = None
    detail: Decorate | None = None


Docs = list[dict[str, Any]]


def _cluster_nodes(registries: Registries, records: list[Record], docs: Docs) -> None:
    counts = registries.cluster_node_counts()
    empty = {"total": 0, "ready": 0, "master": 0, "worker": 0}
    for doc in docs:
        doc["nodes"] = counts.get(doc["id"], empty)


def _cluster_usage(registries: Registries, records: list[Record], docs: Docs) -> None:
    for doc in docs:
        doc["metrics"] = registries.cluster_usage(doc["id"])


def _node_registered_at(registries: Registries, records: list[Record], docs: Docs) -> None:
    for doc in docs:
        doc["registered_at"] = doc["created_at"]


def _function_status(registries: Registries, records: list[Record], docs: Docs) -> None:
    warmth, settings = registries.invoker.warmth, registries.function_settings
    for doc, r in zip(docs, records, strict=True):
        doc["status"] = functions.status_of(r, settings, warmth.is_warm(r.id))


def _fleet_instances(registries: Registries, records: list[Record], docs: Docs) -> None:
    members = Counter(r.spec["fleet_id"] for r in registries.registry.all("instance"))
    for doc in docs:
        doc["instances"] = members[doc["id"]]


def _present_many(registries: Registries, p: Presentation, records: list[Record]) -> Docs:
    """The records as the API shows them, with what the kind adds from elsewhere."""
    docs = [public(r) for r in records]
    if p.extra is not None and docs:
        p.extra(registries, records, docs)
    return docs


def _present(registries: Registries, p: Presentation, record: Record) -> JSONResponse:
    docs = _present_many(registries, p, [record])
    if p.detail is not None:
        p.detail(registries, [record], docs)
    return JSONResponse(docs[0], headers={"ETag": record.etag})


def _optional(annotation: Any) -> Any:
    return annotation | None


def _partial(model: type[BaseModel]) -> type[BaseModel]:
    """Every field optional, plus `resource_version`: the body of a merge update."""
    fields: dict[str, Any] = {
        name: (_optional(info.annotation), Field(None, description=info.description))
        for name, info in model.model_fields.items()
    }
    fields["resource_version"] = (int | None, Field(None, description="Refuse if stale (409)."))
    return make_model(f"{model.__name__}Update", __config__={"extra": "forbid"}, **fields)


BODY = Body(None, description="JSON; the schema is in the OpenAPI document.")


def _json_body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def request_schemas() -> dict[str, Any]:
    """Each kind's create and merge-update bodies, for the OpenAPI document's components."""
    models: list[type[BaseModel]] = []
    for p in PRESENTATIONS:
        models += [p.spec, _partial(p.spec)]
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    return dict(defs.get("$defs", {}))


def _expected(if_match: str | None, body_version: int | None) -> int | None:
    header = parse_if_match(if_match)
    if header is not None and body_version is not None and header != body_version:
        raise InvalidRequest("If-Match and resource_version disagree", field="resource_version")
    return header if header is not None else body_version


def add_resource_routes(p: Presentation) -> None:
    """list, create, get, update (PUT and PATCH), delete for one kind."""
    kind = p.kind
    title = kind.capitalize()
    plural = p.plural
    out_model: Any = create_model(f"Registered{title}", __base__=(p.spec, p.state, ServerFields))
    if p.list_shape == "pagination":
        list_model: Any = make_model(
            f"Registered{title}List",
            **{plural: (list[out_model], ...), "pagination": (Pagination, ...)},
        )
    elif p.list_shape == "total":
        list_model = make_model(
            f"Registered{title}List", **{plural: (list[out_model], ...)}, total=(int, ...),
            page=(int, ...), per_page=(int, ...),
        )  # fmt: skip
    else:
        list_model = list[out_model]  # type: ignore[valid-type]
    spec_body = _json_body(p.spec.__name__)
    merge_body = _json_body(p.spec.__name__ + "Update")

    async def list_resources(
        request: Request,
        page: int = Query(1, ge=1, le=1_000_000),
        limit: int = Query(20, ge=1, le=100),
        labels: str | None = Query(None, max_length=4096,
                                   description="Label selector: env=prod,team!=api,gpu,!legacy"),
        status: str | None = Query(None, max_length=256, description="Comma-separated statuses."),
        sort: str | None = Query(None, max_length=64, description="name, -created_at, "
                                 "updated_at:desc, status"),
    ) -> Response:  # fmt: skip
        registries = registries_of(request)
        chosen = registries.registry.select(kind, labels=labels, status=status, sort=sort)
        shown, meta = page_of(chosen, page, limit)
        items = await asyncio.to_thread(_present_many, registries, p, shown)
        if p.list_shape == "pagination":
            return JSONResponse({plural: items, "pagination": meta})
        if p.list_shape == "total":
            return JSONResponse({plural: items, "total": meta["total"], "page": page,
                                 "per_page": limit})  # fmt: skip
        headers = {"X-Total-Count": str(meta["total"]), "X-Page": str(page),
                   "X-Per-Page": str(limit)}  # fmt: skip
        return JSONResponse(items, headers=headers)

    async def create_resource(request: Request, body: Any = BODY) -> Response:
        registries = registries_of(request)
        record = await asyncio.to_thread(registries.registry.create, kind, body)
        response = _present(registries, p, record)
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/{plural}/{record.id}"
        return response

    async def get_resource(request: Request, rid: str = ID) -> Response:
        registries = registries_of(request)
        record = registries.registry.get(kind, rid)
        return await asyncio.to_thread(_present, registries, p, record)

    async def _update(
        request: Request, rid: str, changes: Any, if_match: str | None, replace: bool
    ) -> Response:
        registries = registries_of(request)
        if not isinstance(changes, dict):
            raise InvalidRequest("the body must be a JSON object", field="body")
        version = changes.pop("resource_version", None)
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise InvalidRequest("resource_version must be an integer", field="resource_version")
        expected = _expected(if_match, version)
        record = await asyncio.to_thread(
            registries.registry.update, kind, rid, changes, expected_version=expected,
            replace=replace,
        )  # fmt: skip
        return await asyncio.to_thread(_present, registries, p, record)

    async def put_resource(
        request: Request, rid: str = ID, if_match: str | None = IF_MATCH, body: Any = BODY
    ) -> Response:
        return await _update(request, rid, body, if_match, p.put_replaces)

    async def patch_resource(
        request: Request, rid: str = ID, if_match: str | None = IF_MATCH, body: Any = BODY
    ) -> Response:
        return await _update(request, rid, body, if_match, False)

    async def delete_resource(
        request: Request,
        rid: str = ID,
        if_match: str | None = IF_MATCH,
        force: bool = Query(False, description="Also delete what depends on it."),
    ) -> Response:
        registries = registries_of(request)
        await asyncio.to_thread(
            registries.delete, kind, rid, expected_version=parse_if_match(if_match), force=force
        )
        if p.delete_shape == "message":
            return JSONResponse({"success": True, "message": f"{title} successfully removed"})
        return Response(status_code=204)

    base = f"/{plural}"
    one = f"/{plural}/{{rid}}"
    item: dict[int | str, Any] = {200: {"model": out_model}}
    deleted: dict[int | str, Any] = (
        {200: {"model": Success}} if p.delete_shape == "message" else {204: {}}
    )
    created: dict[int | str, Any] = {201: {"model": out_model, "links": _links_to_one(kind)}}
    Route = tuple[str, Callable[..., Any], str, list[Any], dict[int | str, Any], str, Any]
    routes: list[Route] = [
        (base, list_resources, "GET", read, {200: {"model": list_model}}, f"List {plural}", None),
        (base, create_resource, "POST", write, {**created, **CHANGE}, f"Create a {kind}",
         spec_body),
        (one, get_resource, "GET", read, {**item, **ONE}, f"One {kind}", None),
        (one, put_resource, "PUT", write, {**item, **CHANGE},
         f"Replace a {kind}" if p.put_replaces else f"Update a {kind} (fields merged)",
         spec_body if p.put_replaces else merge_body),
        (one, patch_resource, "PATCH", write, {**item, **CHANGE},
         f"Change some fields of a {kind}", merge_body),
        (one, delete_resource, "DELETE", write, {**deleted, **CHANGE}, f"Delete a {kind}", None),
    ]  # fmt: skip
    for path, fn, method, deps, responses, summary, body in routes:
        fn.__name__ = f"{fn.__name__}_{kind}"
        router.add_api_route(
            path,
            fn,
            methods=[method],
            dependencies=deps,
            responses=responses,
            summary=summary,
            status_code=201 if method == "POST" else 204 if 204 in responses else 200,
            tags=[plural],
            response_class=JSONResponse,
            openapi_extra=body,
            operation_id=_operation_id(method, kind, path == one),
        )


def _operation_id(method: str, kind: str, one: bool) -> str:
    verb = {"GET": "get" if one else "list", "POST": "create", "PUT": "replace",
            "PATCH": "update", "DELETE": "delete"}[method]  # fmt: skip
    return f"{verb}_{kind}"


def _links_to_one(kind: str) -> dict[str, Any]:
    """OpenAPI links from a create answer to the operations on what it created, so
    client generators and stateful fuzzers chain create -> get/update/delete."""
    return {
        f"{verb.capitalize()}{kind.capitalize()}": {
            "operationId": f"{verb}_{kind}",
            "parameters": {"rid": "$response.body#/id"},
        }
        for verb in ("get", "replace", "update", "delete")
    }


PRESENTATIONS = [
    Presentation("cluster", "clusters", cluster_views.ClusterSpec, ClusterState, "total",
                 "no_content", extra=_cluster_nodes, detail=_cluster_usage),
    Presentation("node", "nodes", edge.NodeSpec, NodeState, "pagination", "message",
                 extra=_node_registered_at),
    Presentation("workload", "workloads", edge.WorkloadSpec, WorkloadState, "pagination",
                 "message"),
    Presentation("function", "functions", functions.FunctionSpec, FunctionState, "array",
                 "no_content", put_replaces=True, extra=_function_status),
    Presentation("fleet", "fleets", fleets.FleetSpec, FleetState, "pagination", "no_content",
                 extra=_fleet_instances),
    Presentation("instance", "instances", fleets.InstanceSpec, InstanceState, "pagination",
                 "no_content"),
]  # fmt: skip
INSTANCES = next(p for p in PRESENTATIONS if p.kind == "instance")
for _presentation in PRESENTATIONS:
    add_resource_routes(_presentation)


# -- actions beyond CRUD ----------------------------------------------------------------


class NodeStatusResult(BaseModel):
    id: str
    name: str
    status: str
    last_heartbeat: str | None


@router.put("/nodes/{rid}/status", response_model=NodeStatusResult, dependencies=write,
            responses=ONE,
            tags=["nodes"], summary="Report a node's status, heartbeat and usage")  # fmt: skip
async def node_status(request: Request, body: edge.NodeStatusUpdate, rid: str = ID) -> Any:
    registries = registries_of(request)
    record = await asyncio.to_thread(
        edge.update_status, registries.registry, rid, body, registries.append,
        registries.heartbeats.beat,
    )  # fmt: skip
    return {"id": record.id, "name": record.spec["name"], "status": record.state["status"],
            "last_heartbeat": record.state.get("last_heartbeat")}  # fmt: skip


class DeployResult(Deployment):
    id: str
    name: str


@router.post("/workloads/{rid}/deploy", response_model=DeployResult, dependencies=write,
             responses=ONE,
             tags=["workloads"], summary="Deploy a workload onto nodes")  # fmt: skip
async def deploy_workload(request: Request, body: edge.DeployRequest, rid: str = ID) -> Any:
    registries = registries_of(request)
    return await asyncio.to_thread(edge.deploy, registries.registry, rid, body)


@router.post("/instances/{rid}/start", dependencies=write, tags=["instances"], responses=CHANGE,
             summary="Start a stopped instance (409 otherwise)")  # fmt: skip
async def start_instance(request: Request, rid: str = ID) -> Response:
    return await _transition(request, rid, "start")


@router.post("/instances/{rid}/stop", dependencies=write, tags=["instances"], responses=CHANGE,
             summary="Stop a running instance (409 otherwise)")  # fmt: skip
async def stop_instance(request: Request, rid: str = ID) -> Response:
    return await _transition(request, rid, "stop")


async def _transition(request: Request, rid: str, action: str) -> Response:
    registries = registries_of(request)
    record = await asyncio.to_thread(fleets.transition, registries.registry, rid, action)
    return _present(registries, INSTANCES, record)


class ClusterWorkload(BaseModel):
    name: str
    namespace: str
    kind: str
    replicas: dict[str, int] = Field(description="desired, ready, available")
    status: Literal["ready", "progressing"]
    requested_replicas: int | None = None


class ClusterService(BaseModel):
    name: str
    namespace: str
    type: str
    endpoints_ready: int


class ClusterPod(BaseModel):
    name: str
    namespace: str
    status: str
    ready: bool
    node: str


class ClusterWorkloads(BaseModel):
    workloads: dict[str, list[ClusterWorkload | ClusterService | ClusterPod]] = Field(
        description="deployments (and statefulsets, daemonsets... as seen), services, pods."
    )


@router.get("/clusters/{rid}/workloads", response_model=ClusterWorkloads, dependencies=read,
            responses=ONE,
            tags=["clusters"], summary="Workloads, services and pods it reports")  # fmt: skip
async def cluster_workloads(request: Request, rid: str = ID) -> Any:
    registries = registries_of(request)
    cluster = registries.registry.get("cluster", rid)
    found = await asyncio.to_thread(cluster_views.workloads, registries.query, cluster)
    return JSONResponse({"workloads": found})


class ScaleBody(BaseModel):
    replicas: int = Field(ge=0, le=10_000)


class ScaleResult(BaseModel):
    cluster_id: str
    type: str
    namespace: str
    name: str
    replicas: int
    requested_at: str


@router.patch(
    "/clusters/{rid}/workloads/{workload_type}/{namespace}/{name}/scale",
    response_model=ScaleResult,
    dependencies=write,
    responses=ONE,
    tags=["clusters"],
    summary="Record a desired replica count for a workload the cluster reports",
)
async def scale_workload(
    request: Request,
    body: ScaleBody,
    rid: str = ID,
    workload_type: str = Path(min_length=1, max_length=64),
    namespace: str = Path(min_length=1, max_length=253),
    name: str = Path(min_length=1, max_length=253),
) -> Any:
    registries = registries_of(request)
    return await asyncio.to_thread(
        cluster_views.scale, registries.registry, registries.query, rid, workload_type,
        namespace, name, body.replicas,
    )  # fmt: skip


@router.post(
    "/functions/{rid}/invoke",
    dependencies=write,
    tags=["functions"],
    summary="Invoke a function: its response, X-Function-Duration and X-Cold-Start",
    responses={
        200: {"description": "The function's own response, status and body."},
        **CHANGE,
        502: {"description": "Unreachable."},
        504: {"description": "Timed out."},
    },
)
async def invoke_function(
    request: Request, rid: str = ID, body: Any = Body(None, description="Any JSON.")
) -> Response:
    registries = registries_of(request)
    event = event_object(body, dict(request.headers), dict(request.query_params))
    result = await registries.invoker.invoke(rid, event)
    headers = {
        "X-Function-Duration": f"{result.seconds:.6f}",
        "X-Cold-Start": "true" if result.cold_start else "false",
    }
    return Response(result.body, status_code=result.status, media_type=result.content_type,
                    headers=headers)  # fmt: skip


class FunctionMetrics(BaseModel):
    function: str
    timeframe: str
    invocations: int
    coldStarts: int
    errors: int
    avgDuration: float = Field(description="Seconds.")
    errorRate: float = Field(description="errors / invocations.")
    costEstimate: float = Field(description="function_cost_* settings (docs/registry.md).")


@router.get("/functions/{rid}/metrics", response_model=FunctionMetrics, dependencies=read,
            responses=ONE,
            tags=["functions"], summary="Invocations, cold starts, errors, cost")  # fmt: skip
async def function_metrics(
    request: Request,
    rid: str = ID,
    timeframe: str = Query("24h", pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$",
                           description="How far back from now: 1h, 24h, 7d."),
) -> Any:  # fmt: skip
    registries = registries_of(request)
    record = registries.registry.get("function", rid)
    return await asyncio.to_thread(
        functions.metrics, registries.query, record, timeframe, registries.function_settings
    )
