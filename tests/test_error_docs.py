"""docs/api.md lists every error code the API sends, with its status."""

from pathlib import Path

from hakon.api.errors import STATUS_BY_CODE

DOC = (Path(__file__).parent.parent / "docs" / "api.md").read_text()


def test_every_error_code_is_documented_with_its_status() -> None:
    for code, status in STATUS_BY_CODE.items():
        assert f"| `{code}` | {status} |" in DOC, code
