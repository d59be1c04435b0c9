"""Run the whole service in one process: prepare the data dir, bind, serve, shut down cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

import uvicorn

from hakon import __version__
from hakon.api.app import create_app
from hakon.auth.secret import SecretError
from hakon.auth.tokens import ADMIN
from hakon.config import Settings
from hakon.runtime import Runtime

log = logging.getLogger("hakon")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host.strip("[]"), settings.port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"hakon: cannot listen on {settings.host}:{settings.port}: {exc}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown so the process
    dies by the signal; Hakon has finished cleanly by then and exits with 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def _check_rules(settings: Settings) -> None:
    """Refuse to start on a bad rule file, as Prometheus does, naming every problem."""
    from hakon.alerting.rules import RuleFileError, load_files

    if not settings.rules:
        return
    try:
        load_files(list(settings.rules))
    except RuleFileError as exc:
        raise SystemExit("hakon: cannot load rules:\n  " + "\n  ".join(exc.problems)) from None


def _memory_report_on_sigusr2() -> None:
    """With PYTHONTRACEMALLOC set, SIGUSR2 logs where memory grew since the last signal:
    the tool for a server whose resident size keeps rising."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return
    last: list[tracemalloc.Snapshot] = []

    def report(signum: int, frame: object) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snapshot.compare_to(last[0], "lineno") if last else snapshot.statistics("lineno")
        total = sum(s.size for s in snapshot.statistics("filename"))
        lines = [f"traced memory {total / 2**20:.1f} MiB; largest changes:"]
        lines += [f"  {stat}" for stat in stats[:25]]
        log.warning("\n".join(lines))
        last[:] = [snapshot]

    signal.signal(signal.SIGUSR2, report)


def _reload_on_sighup(runtime: Runtime) -> None:
    def reload(signum: int, frame: object) -> None:
        def run() -> None:
            from hakon.alerting.rules import RuleFileError

            try:
                runtime.rules.load()
            except RuleFileError as exc:
                log.error("rule reload failed; the previous rules stay:\n%s", exc)
            except Exception:
                log.exception("rule reload failed")

        threading.Thread(target=run, name="hakon-reload", daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)


def serve(settings: Settings) -> int:
    started = time.monotonic()
    configure_logging(settings.log_level)
    _check_rules(settings)
    try:
        runtime, first_start = Runtime.prepare(settings)
    except SecretError as exc:
        raise SystemExit(f"hakon: {exc}") from None
    sock = bind(settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    print(f"Hakon {__version__} serving on {url} (data dir {settings.data_dir})", flush=True)
    if settings.no_auth:
        log.warning(
            "AUTHENTICATION IS DISABLED (--no-auth): anyone who can reach %s is an admin", url
        )
    elif first_start:
        token, _ = runtime.offline_authority().mint(
            subject="admin", scopes=[ADMIN], ttl_seconds=settings.bootstrap_token_ttl
        )
        print(f"Admin token (shown once): {token}", flush=True)
        print(
            f"Mint more with: hakon token create --data-dir {settings.data_dir} --scope SCOPE",
            flush=True,
        )
    config = uvicorn.Config(
        create_app(runtime),
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_timeout)),
        server_header=False,
        lifespan="on",
    )
    server = _Server(config)
    _reload_on_sighup(runtime)
    _memory_report_on_sigusr2()
    log.info("started in %.0f ms", (time.monotonic() - started) * 1000)
    server.run(sockets=[sock])
    log.info("stopped")
    return 0 if server.started else 1
