"""Schema-driven fuzzing of every route of a real server from its own /openapi.json:
no 5xx, no response that breaks the documented schema, statuses and content types.

`HAKON_FUZZ_EXAMPLES` sets examples per operation (default 8 in the suite; try 200
by hand for a longer run). The stateful test follows the document's links (a
create answer's id into get, update and delete of the same resource) in
`HAKON_FUZZ_SCENARIOS` generated call sequences.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from serverproc import HakonProcess

EXAMPLES = int(os.environ.get("HAKON_FUZZ_EXAMPLES", "8"))
SCENARIOS = int(os.environ.get("HAKON_FUZZ_SCENARIOS", "40"))
# Schemas cannot say everything a route checks (a duration's grammar, a PromQL
# expression, an id that exists), so a schema-valid request may rightly be a 400 or 404.
EXCLUDED = [checks.positive_data_acceptance]


@schemathesis.serializer("application/x-protobuf")
def _binary(ctx: object, value: object) -> bytes:
    """remote_write bodies: whatever was generated, as bytes (mostly not snappy: 400s)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HakonProcess]:
    data: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with HakonProcess(
        data, "--rate-limit-rps", "0", "--function-timeout", "1s", "--webhook-give-up", "5s"
    ) as proc:
        yield proc


def test_every_route_keeps_its_contract(fuzz_server: HakonProcess) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.admin_token()}"}
    failures: list[str] = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=fuzz_server.url, headers=headers, excluded_checks=EXCLUDED
            )

        try:
            call()
        except BaseException as exc:  # every operation is fuzzed; all failures are reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_linked_call_sequences_keep_the_contract(fuzz_server: HakonProcess) -> None:
    """create -> get/update/delete chains on real ids, not only random ones that 404."""
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.admin_token()}"}
    machine = schema.as_state_machine()
    linked = {n for n in machine.__dict__ if "_rid_" in n and n.startswith("POST_api_v1_")}
    assert {"nodes", "clusters", "workloads", "functions", "fleets", "instances"} <= {
        n.split("_")[3] for n in linked
    }, "every registry's create should link to its resource"

    class Scenarios(machine):  # type: ignore[misc, valid-type]
        def teardown(self) -> None:
            _delete_everything(fuzz_server)  # each scenario starts from the same empty server
            super().teardown()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            # A case made to break its headers (dropping Authorization) is sent as made.
            broken = case.meta is not None and any(
                location.name.lower() == "header" and info.mode == GenerationMode.NEGATIVE
                for location, info in case.meta.components.items()
            )
            return {"base_url": fuzz_server.url, **({} if broken else {"headers": headers})}

        def validate_response(self, response, case, additional_checks=None, **kwargs):  # type: ignore[no-untyped-def]
            case.validate_response(response, excluded_checks=EXCLUDED, headers=headers)

    scenarios = settings(max_examples=SCENARIOS, stateful_step_count=6, deadline=None,
                         derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    Scenarios.run(settings=scenarios)


# Dependents first, so no delete is refused for what still refers to it.
COLLECTIONS = ["alert-rules", "webhooks", "instances", "fleets", "workloads", "functions",
               "nodes", "clusters"]  # fmt: skip


def _delete_everything(server: HakonProcess) -> None:
    with server.client() as client:
        for name in COLLECTIONS:
            while True:
                listed = client.get(f"/api/v1/{name}", params={"limit": 100})
                assert listed.status_code == 200, listed.text
                body = listed.json()
                items = (
                    body
                    if isinstance(body, list)
                    else next(v for v in body.values() if isinstance(v, list))
                )
                if not items:
                    break
                for item in items:
                    gone = client.delete(f"/api/v1/{name}/{item['id']}", params={"force": "true"})
                    assert gone.status_code in (200, 204, 404), gone.text
