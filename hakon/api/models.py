"""Shared pieces of the API's JSON models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

# RFC 3339 UTC with a trailing Z and whole seconds, as the seeds show.
UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(lambda d: d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
]


def utc_from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class StrictModel(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")
