"""`/openapi.json` tells the truth: errors we send, scopes we check, no 422."""

from hakon.api.app import create_app
from hakon.config import Settings
from hakon.runtime import Runtime


def spec(tmp_path) -> dict:
    settings = Settings.load({"data_dir": str(tmp_path)}, {})
    runtime, _ = Runtime.prepare(settings)
    return create_app(runtime).openapi()


def test_every_operation_documents_its_errors(tmp_path) -> None:
    doc = spec(tmp_path)
    assert "ErrorResponse" in doc["components"]["schemas"]
    operations = [op for path in doc["paths"].values() for op in path.values()]
    assert len(operations) == 10  # health x2, ready x2, metrics, 3 token routes, 2 admin
    for op in operations:
        assert "422" not in op["responses"]
        assert "500" in op["responses"]
        if "requestBody" in op:
            assert "400" in op["responses"]


def test_authenticated_operations_carry_security_and_scope(tmp_path) -> None:
    doc = spec(tmp_path)
    mint = doc["paths"]["/api/v1/security/tokens"]["post"]
    assert mint["security"] == [{"bearer": ["admin"]}]
    assert mint["x-required-scope"] == "admin"
    assert {"401", "403", "429"} <= set(mint["responses"])
    health = doc["paths"]["/health"]["get"]
    assert "security" not in health and "401" not in health["responses"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
