"""Schema-driven fuzzing of every route of a real server from its own /openapi.json:
no 5xx, no response that breaks the documented schema, statuses and content types.

`HAKON_FUZZ_EXAMPLES` sets examples per operation (default 8 in the suite; try 200
by hand for a longer run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from serverproc import HakonProcess

EXAMPLES = int(os.environ.get("HAKON_FUZZ_EXAMPLES", "8"))
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
    proc = HakonProcess(
        data, "--rate-limit-rps", "0", "--function-timeout", "1s", "--webhook-give-up", "5s"
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


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
