"""Run `hakon serve` as a real subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HakonProcess:
    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HAKON_")}
        self.env.update(env or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> HakonProcess:
        cmd = [sys.executable, "-m", "hakon", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir), *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hakon serve exited early:\n{self.output}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hakon serve did not become ready:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"hakon serve ignored signal {sig}:\n{self.output}") from None

    @property
    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def admin_token(self) -> str:
        for line in self.output.splitlines():
            if line.startswith("Admin token"):
                return line.rsplit(" ", 1)[1]
        raise AssertionError("no admin token printed:\n" + self.output)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server, authenticated with the admin token."""
        headers = {"Authorization": f"Bearer {self.admin_token()}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def token(self, *scopes: str) -> str:
        """A token with just these scopes, minted through the API with the admin token."""
        response = httpx.post(
            self.url + "/api/v1/security/tokens",
            json={"subject": "test-" + "-".join(scopes), "scopes": list(scopes)},
            headers={"Authorization": f"Bearer {self.admin_token()}"},
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def __enter__(self) -> HakonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], T], timeout: float = 30.0, every: float = 0.2) -> T:
    """Poll until `condition()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not reached within {timeout:g}s")
