"""`/openapi.json` tells the truth: errors we send, scopes we check, no 422."""

import json
import re

from hakon.api.app import create_app
from hakon.config import Settings
from hakon.runtime import Runtime


def spec(tmp_path) -> dict:
    settings = Settings.load({"data_dir": str(tmp_path)}, {})
    runtime, _ = Runtime.prepare(settings)
    return create_app(runtime).openapi()


def test_every_operation_documents_its_errors(tmp_path) -> None:
    doc = spec(tmp_path)
    assert "ErrorResponse" in doc["components"]["schemas"]
    operations = [op for path in doc["paths"].values() for op in path.values()]
    # health x2, ready x2, metrics, 3 token routes, 2 admin, 7 HakonGo collectors,
    # node metrics, remote_write, text import, 2 Influx writes; Prometheus API: query,
    # query_range, series, labels and format_query as GET and POST, label values,
    # metadata, exemplars, buildinfo, rules, alerts; native node, fleet and cluster metrics;
    # rule reload, alerts; webhooks: create, list, get, patch, delete, deliveries, test;
    # alert rules: create, list, get, put, patch, delete; six registries x (list, create,
    # get, put, patch, delete); node status, workload deploy, instance start and stop,
    # cluster workloads and scale, function invoke and metrics
    assert len(operations) == 56 + 6 * 6 + 8
    for op in operations:
        evaluates = op["operationId"].startswith(("prometheus_query_", "prometheus_query_range_"))
        assert ("422" in op["responses"]) == evaluates
        assert "500" in op["responses"]
        if "requestBody" in op:
            assert "400" in op["responses"]


def test_prometheus_operations_document_prometheus_shapes(tmp_path) -> None:
    doc = spec(tmp_path)
    query = doc["paths"]["/prometheus/api/v1/query"]
    assert {"get", "post"} <= set(query)
    post = query["post"]
    assert "application/x-www-form-urlencoded" in post["requestBody"]["content"]
    assert post["x-required-scope"] == "metrics:read"
    schema = post["responses"]["400"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PrometheusError"}
    names = {p["name"] for p in query["get"]["parameters"]}
    assert {"query", "time", "timeout", "limit"} <= names


def test_authenticated_operations_carry_security_and_scope(tmp_path) -> None:
    doc = spec(tmp_path)
    mint = doc["paths"]["/api/v1/security/tokens"]["post"]
    assert mint["security"] == [{"bearer": ["admin"]}]
    assert mint["x-required-scope"] == "admin"
    assert {"401", "403", "429"} <= set(mint["responses"])
    health = doc["paths"]["/health"]["get"]
    assert "security" not in health and "401" not in health["responses"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_each_collector_is_its_own_route_with_its_own_schema(tmp_path) -> None:
    from hakon.ingest.collectors import COLLECTORS

    doc = spec(tmp_path)
    schemas = doc["components"]["schemas"]
    for collector in COLLECTORS:
        op = doc["paths"][f"/api/v1/hakongo/{collector.path}"]["post"]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        request = schemas[ref.rsplit("/", 1)[1]]
        assert set(request["required"]) == {"cluster_id", "context", "collected_at", "resources"}
        item_ref = request["properties"]["resources"]["items"]["$ref"]
        resource = schemas[item_ref.rsplit("/", 1)[1]]
        for number in collector.kind.numbers:
            assert number.field in resource["properties"], (collector.path, number.field)
        assert {"401", "403", "413", "415", "429"} <= set(op["responses"])
        assert op["x-required-scope"] == "metrics:write"
    node = doc["paths"]["/api/v1/metrics/nodes/{node_id}"]["post"]
    assert node["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NodeMetrics"
    )
    write = doc["paths"]["/api/v1/write"]["post"]
    assert "application/x-protobuf" in write["requestBody"]["content"]


def test_every_schema_reference_resolves_and_registries_document_their_bodies(tmp_path) -> None:
    doc = spec(tmp_path)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])
    for kind, body in [("fleets", "FleetSpec"), ("nodes", "NodeSpec"), ("clusters", "ClusterSpec")]:
        create = doc["paths"][f"/api/v1/{kind}"]["post"]["requestBody"]["content"]
        assert create["application/json"]["schema"]["$ref"].endswith("/" + body)
        patch = doc["paths"][f"/api/v1/{kind}/{{rid}}"]["patch"]["requestBody"]["content"]
        assert patch["application/json"]["schema"]["$ref"].endswith(f"/{body}Update")
