"""Kubernetes resource quantities ("500m", "2.5", "4Gi", "100M") as plain numbers."""

from __future__ import annotations

import re

from hakon.errors import InvalidRequest

_SUFFIX = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?([a-zA-Z]{0,2})$")
PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


def parse_quantity(text: str, field: str) -> float:
    found = _QUANTITY.match(text.strip())
    if found is None or found.group(3) not in _SUFFIX:
        raise InvalidRequest(
            f"{field}: {text[:40]!r} is not a quantity such as 500m, 2.5, 4Gi or 100M",
            field=field,
        )
    number = float(found.group(1)) * 10.0 ** int(found.group(2) or 0)
    return number * _SUFFIX[found.group(3)]
