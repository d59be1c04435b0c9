"""The data dir's signing secret: created once, readable by its owner only."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

SECRET_FILE = "secret.key"
log = logging.getLogger(__name__)


class SecretError(RuntimeError):
    pass


def secret_path(data_dir: Path) -> Path:
    return Path(data_dir) / SECRET_FILE


def read_secret(data_dir: Path) -> bytes:
    path = secret_path(data_dir)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise SecretError(
            f"no signing secret at {path}: start `hakon serve --data-dir {data_dir}` once "
            "or set HAKON_AUTH_SECRET"
        ) from None
    if len(text) < 32:
        raise SecretError(f"the signing secret in {path} is shorter than 32 characters")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        # Anyone on the machine could mint admin tokens with it.
        raise SecretError(
            f"the signing secret {path} is accessible to every user (mode {mode:o}); "
            f"run `chmod 600 {path}` (and consider it leaked: rotate it if others can log in)"
        )
    if mode & 0o070:
        log.warning("%s is accessible to its group (mode %o); it should be 0600", path, mode)
    return text.encode()


def load_or_create_secret(data_dir: Path) -> tuple[bytes, bool]:
    """The secret, and whether it was created now (first start)."""
    path = secret_path(data_dir)
    try:
        return read_secret(data_dir), False
    except SecretError:
        if path.exists():
            raise
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return value.encode(), True
