"""`hakon serve` and `hakon token create` as an operator runs them: real processes."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import time

import httpx
import pytest
from serverproc import HakonProcess

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority


def hakon(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hakon", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_start_then_clean_shutdown(tmp_path, sig) -> None:
    proc = HakonProcess(tmp_path / "data").start()
    token = proc.admin_token()
    assert f"serving on http://127.0.0.1:{proc.port}" in proc.output
    secret_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    resp = httpx.post(
        proc.url + "/api/v1/security/tokens/validate",
        json={"token": token},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.json()["valid"] is True and resp.json()["scopes"] == ["admin"]
    started = time.monotonic()
    assert proc.stop(sig) == 0
    assert time.monotonic() - started < 5
    assert "Traceback" not in proc.output


def test_restart_keeps_secret_and_revocations(tmp_path) -> None:
    data = tmp_path / "data"
    with HakonProcess(data) as first:
        admin = first.admin_token()
        victim, _ = TokenAuthority(read_secret(data)).mint(
            subject="v", scopes=["metrics:read"], ttl_seconds=3600
        )
        resp = httpx.post(
            first.url + "/api/v1/security/tokens/revoke",
            json={"token": victim},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert resp.status_code == 200
    with HakonProcess(data) as second:
        assert "Admin token" not in second.output  # printed on first start only
        check = httpx.post(
            second.url + "/api/v1/security/tokens/validate",
            json={"token": victim},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert check.json() == {
            "valid": False,
            "reason": "revoked",
            "subject": None,
            "scopes": None,
            "node_id": None,
            "cluster_id": None,
            "expires_at": None,
        }


def test_rate_limit_answers_429_with_retry_after(tmp_path) -> None:
    args = ("--rate-limit-burst", "3", "--rate-limit-rps", "0.2")
    with HakonProcess(tmp_path / "data", *args) as proc:
        admin = proc.admin_token()
        headers = {"Authorization": f"Bearer {admin}"}
        url = proc.url + "/api/v1/security/tokens/validate"
        statuses = [httpx.post(url, json={"token": admin}, headers=headers) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in statuses] == ["2", "1", "0", "0"]
        limited = statuses[-1]
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        assert limited.headers["x-ratelimit-limit"] == "3"
        assert httpx.get(proc.url + "/health").status_code == 200  # unauthenticated: no bucket
        assert (
            'hakon_rate_limited_requests_total{bucket="api"} 1.0'
            in httpx.get(proc.url + "/metrics").text
        )


def test_metrics_can_require_a_token(tmp_path) -> None:
    with HakonProcess(tmp_path / "data", "--metrics-require-auth") as proc:
        assert httpx.get(proc.url + "/metrics").status_code == 401
        reader, _ = TokenAuthority(read_secret(proc.data_dir)).mint(
            subject="scraper", scopes=["metrics:read"], ttl_seconds=60
        )
        resp = httpx.get(proc.url + "/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert resp.status_code == 200 and "hakon_build_info" in resp.text


def test_a_world_readable_signing_secret_stops_start(tmp_path) -> None:
    data = tmp_path / "data"
    HakonProcess(data).start().stop()
    secret_file = data / "secret.key"
    secret_file.chmod(0o644)
    result = hakon("serve", "--data-dir", str(data))
    assert result.returncode != 0
    assert "accessible to every user (mode 644)" in result.stderr
    assert "chmod 600" in result.stderr
    assert secret_file.read_text().strip() not in result.stderr + result.stdout
    secret_file.chmod(0o640)  # group access: a warning, not a refusal
    with HakonProcess(data) as proc:
        assert httpx.get(proc.url + "/health").status_code == 200
    assert "accessible to its group" in proc.output


def test_no_auth_is_refused_off_loopback(tmp_path) -> None:
    result = hakon("serve", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no_auth is refused with host '0.0.0.0'" in result.stderr


def test_no_auth_on_loopback_is_loud_and_open(tmp_path) -> None:
    with HakonProcess(tmp_path / "data", "--no-auth") as proc:
        resp = httpx.post(proc.url + "/api/v1/security/tokens", json={"scopes": ["metrics:read"]})
        assert resp.status_code == 201
    assert "AUTHENTICATION IS DISABLED" in proc.output


def test_bad_setting_from_environment_stops_start(tmp_path) -> None:
    result = hakon("serve", "--data-dir", str(tmp_path), env={"HAKON_PORT": "nine"})
    assert result.returncode == 2
    assert "invalid value 'nine' for port (HAKON_PORT)" in result.stderr


def test_serve_help_documents_every_setting() -> None:
    from hakon.config import setting_fields

    out = hakon("serve", "--help").stdout
    for f in setting_fields():
        assert "--" + f.name.replace("_", "-") in out
        assert "HAKON_" + f.name.upper() in out


def test_token_create_prints_only_a_token(tmp_path) -> None:
    with HakonProcess(tmp_path / "data"):
        pass
    result = hakon(
        "token", "create", "--data-dir", str(tmp_path / "data"),
        "--scope", "metrics:write", "--scope", "metrics:read",
        "--ttl", "2h", "--cluster-id", "prod-eu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = TokenAuthority(read_secret(tmp_path / "data")).verify(token)
    assert claims.scopes == {"metrics:write", "metrics:read"}
    assert claims.cluster_id == "prod-eu" and claims.subject == "cluster:prod-eu"
    assert 7190 <= claims.expires_at - claims.issued_at <= 7200


def test_token_create_without_a_secret_explains(tmp_path) -> None:
    result = hakon("token", "create", "--data-dir", str(tmp_path), "--scope", "admin")
    assert result.returncode == 2
    assert "no signing secret" in result.stderr and result.stdout == ""
