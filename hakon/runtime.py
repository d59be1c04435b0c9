"""The dependencies object: every long-lived service, built once from settings.

The CLI prepares it (data dir, secret) before the server binds, the app's
lifespan opens it in a worker thread (so `/health` answers and `/ready` says
503 while storage opens), and closes it on shutdown.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TypeVar

from hakon.alerting.alertmanager import AlertmanagerSender
from hakon.alerting.api_rules import ApiRules
from hakon.alerting.manager import RuleManager
from hakon.alerting.notifier import Notifier
from hakon.auth.revocation import CatalogRevocationStore, RevocationList
from hakon.auth.secret import load_or_create_secret
from hakon.auth.tokens import TokenAuthority
from hakon.config import Settings
from hakon.errors import Unavailable
from hakon.gcpolicy import GcFreezer
from hakon.ingest.decoding import default_processes
from hakon.ingest.service import Ingest, limits_from
from hakon.mallocpolicy import arrow_on_system_heap, keep_large_blocks, limit_arenas
from hakon.query.engine import Engine
from hakon.query.service import QueryService, concurrency_from, options_from
from hakon.registry.functions import FunctionSettings
from hakon.registry.service import Registries
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import RAW
from hakon.telemetry import Telemetry

log = logging.getLogger(__name__)


T = TypeVar("T")


def _opened(service: T | None) -> T:
    """A service built by `open()`; before that (or after close) the caller retries."""
    if service is None:
        raise Unavailable("storage is still opening; retry shortly")
    return service


class Runtime:
    def __init__(self, settings: Settings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret
        self.telemetry = Telemetry()
        self.catalog: Catalog | None = None
        self._store: Store | None = None
        self._ingest: Ingest | None = None
        self._query: QueryService | None = None
        self._rules: RuleManager | None = None
        self._notifier: Notifier | None = None
        self._registries: Registries | None = None
        self._alertmanager: AlertmanagerSender | None = None
        self._gc: GcFreezer | None = None
        self._authority: TokenAuthority | None = None
        self._ready = threading.Event()
        self.open_error: BaseException | None = None

    @classmethod
    def prepare(cls, settings: Settings) -> tuple[Runtime, bool]:
        """Create the data dir and secret if needed; True when this is the first start."""
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        if settings.auth_secret:
            return cls(settings, settings.auth_secret.encode()), False
        secret, created = load_or_create_secret(data_dir)
        return cls(settings, secret), created

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def authority(self) -> TokenAuthority:
        return _opened(self._authority)

    @property
    def store(self) -> Store:
        return _opened(self._store)

    @property
    def query(self) -> QueryService:
        return _opened(self._query)

    @property
    def notifier(self) -> Notifier:
        return _opened(self._notifier)

    @property
    def rules(self) -> RuleManager:
        return _opened(self._rules)

    @property
    def registries(self) -> Registries:
        return _opened(self._registries)

    @property
    def ingest(self) -> Ingest:
        return _opened(self._ingest)

    def offline_authority(self) -> TokenAuthority:
        """An authority that can mint (not check revocations), usable before open()."""
        return TokenAuthority(self.secret)

    def open(self) -> None:
        if self.settings.malloc_arenas:
            limit_arenas(self.settings.malloc_arenas)  # before DuckDB's and our threads
        arrow_on_system_heap()
        try:
            self.catalog = Catalog.open_in(self.settings.data_dir)
            revocations = RevocationList(CatalogRevocationStore(self.catalog))
            self._authority = TokenAuthority(self.secret, revocations)
            self._store = Store(self.settings.data_dir, self.catalog, store_options(self.settings))
            self._store.open()
            self._ingest = Ingest(
                self._store,
                limits_from(self.settings),
                self.settings.ingest_max_pending_samples,
                self.settings.ingest_max_concurrent_requests,
                decode_processes(self.settings.ingest_decode_processes),
            )
            self._ingest.decoding.warm()
            self._alertmanager = AlertmanagerSender(self.settings.alertmanager_url).start()
            self._notifier = Notifier(
                self.catalog,
                allow_private=self.settings.webhook_allow_private,
                server=(self.settings.host, self.settings.port),
                give_up_s=self.settings.webhook_give_up,
            ).start()
            self._rules = RuleManager(
                self._store,
                Engine(self._store, options_from(self.settings)),
                self.settings.rules,
                self._notifier,
                self._alertmanager,
                ApiRules(self.catalog),
                group_by=self.settings.alert_group_by,
                repeat_ms=int(self.settings.alert_repeat_interval * 1000),
            )
            self._rules.load()
            self._rules.start()
            self._registries = Registries(
                self.catalog,
                Engine(self._store, options_from(self.settings)),
                self._store.append,
                self._notifier.publish,
                offline_after_s=self.settings.node_offline_after,
                functions=function_settings(self.settings),
            ).start()
            self._query = QueryService(
                self._store,
                options_from(self.settings),
                concurrency_from(self.settings.query_max_concurrency),
            )
        except BaseException as exc:
            self.open_error = exc
            log.exception("opening storage failed")
            raise
        self._gc = GcFreezer().start()  # after the replay and index load: freeze them
        if self.settings.malloc_keep_bytes:
            keep_large_blocks(self.settings.malloc_keep_bytes)
        self._ready.set()
        log.info("storage open in %s", self.settings.data_dir)

    def close(self) -> None:
        self._ready.clear()
        if self._gc is not None:
            self._gc.stop()
        self._query = None
        if self._rules is not None:
            self._rules.stop()
            self._rules = None
        if self._registries is not None:
            self._registries.stop()
            self._registries = None
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None
        if self._alertmanager is not None:
            self._alertmanager.stop()
            self._alertmanager = None
        if self._ingest is not None:
            self._ingest.close()
            self._ingest = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None


def store_options(settings: Settings) -> StoreOptions:
    ms = 1000
    return StoreOptions(
        block_duration_ms=int(settings.block_duration * ms),
        head_max_samples=settings.head_max_samples,
        head_max_age_s=settings.head_max_age,
        wal_segment_bytes=settings.wal_segment_bytes,
        retention_ms={
            RAW: int(settings.retention_raw * ms),
            300_000: int(settings.retention_5m * ms),
            3_600_000: int(settings.retention_1h * ms),
        },
        max_future_ms=int(settings.max_future * ms),
        compaction_min_blocks=settings.compaction_min_blocks,
        compaction_max_rows=settings.compaction_max_rows,
        child_min_rows=settings.block_writer_min_rows,
        row_group_rows=settings.block_row_group_rows,
        block_cache_bytes=settings.block_cache_size,
        block_cache_idle_s=settings.block_cache_idle,
    )


def function_settings(settings: Settings) -> FunctionSettings:
    return FunctionSettings(
        url_template=settings.function_url_template,
        timeout_s=settings.function_timeout,
        keep_warm_s=settings.function_keep_warm,
        cost_per_million_requests=settings.function_cost_per_million_requests,
        cost_per_gb_second=settings.function_cost_per_gb_second,
    )


def decode_processes(setting: int) -> int:
    return default_processes() if setting < 0 else setting
