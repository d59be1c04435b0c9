"""The dependencies object: every long-lived service, built once from settings.

The CLI prepares it (data dir, secret) before the server binds, the app's
lifespan opens it in a worker thread (so `/health` answers and `/ready` says
503 while storage opens), and closes it on shutdown.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from hakon.auth.revocation import CatalogRevocationStore, RevocationList
from hakon.auth.secret import load_or_create_secret
from hakon.auth.tokens import TokenAuthority
from hakon.config import Settings
from hakon.errors import Unavailable
from hakon.store.catalog import Catalog
from hakon.telemetry import Telemetry

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret
        self.telemetry = Telemetry()
        self.catalog: Catalog | None = None
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
        if self._authority is None:
            raise Unavailable("storage is still opening; retry shortly")
        return self._authority

    def offline_authority(self) -> TokenAuthority:
        """An authority that can mint (not check revocations), usable before open()."""
        return TokenAuthority(self.secret)

    def open(self) -> None:
        try:
            self.catalog = Catalog.open_in(self.settings.data_dir)
            revocations = RevocationList(CatalogRevocationStore(self.catalog))
            self._authority = TokenAuthority(self.secret, revocations)
        except BaseException as exc:
            self.open_error = exc
            log.exception("opening storage failed")
            raise
        self._ready.set()
        log.info("storage open in %s", self.settings.data_dir)

    def close(self) -> None:
        self._ready.clear()
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None
