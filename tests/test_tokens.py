import time

import jwt
import pytest

from hakon.auth.revocation import CatalogRevocationStore, RevocationList
from hakon.auth.tokens import InvalidToken, TokenAuthority
from hakon.errors import Forbidden, InvalidRequest
from hakon.store.catalog import Catalog

SECRET = b"s" * 64


@pytest.fixture
def authority(tmp_path):
    catalog = Catalog.open_in(tmp_path)
    yield TokenAuthority(SECRET, RevocationList(CatalogRevocationStore(catalog)))
    catalog.close()


def test_round_trip_keeps_every_claim(authority: TokenAuthority) -> None:
    token, minted = authority.mint(
        subject="node:n1", scopes=["metrics:write"], ttl_seconds=60, node_id="n1"
    )
    claims = authority.verify(token)
    assert claims == minted
    assert claims.node_id == "n1" and claims.cluster_id is None
    assert claims.allows("metrics:write") and not claims.allows("metrics:read")


def test_admin_implies_every_scope(authority: TokenAuthority) -> None:
    token, _ = authority.mint(subject="a", scopes=["admin"], ttl_seconds=60)
    claims = authority.verify(token)
    assert all(claims.allows(s) for s in ("metrics:read", "registry:write", "alerts:write"))


def _reason(authority: TokenAuthority, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        authority.verify(token)
    return info.value.reason


def test_refusals_say_why(authority: TokenAuthority) -> None:
    expired, _ = authority.mint(subject="a", scopes=["admin"], ttl_seconds=1, now=time.time() - 10)
    assert _reason(authority, expired) == "expired"
    forged, _ = TokenAuthority(b"x" * 64).mint(subject="a", scopes=["admin"], ttl_seconds=60)
    assert _reason(authority, forged) == "bad_signature"
    assert _reason(authority, "not-a-jwt") == "malformed"
    assert _reason(authority, "") == "malformed"


def test_unsigned_and_foreign_algorithms_are_refused(authority: TokenAuthority) -> None:
    claims = {"sub": "a", "scopes": ["admin"], "iat": 1, "exp": 2**40, "jti": "x"}
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert _reason(authority, unsigned) == "malformed"
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    assert _reason(authority, hs512) == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        {"sub": "a", "iat": 1, "exp": 2**40, "jti": "x"},  # no scopes
        {"sub": "a", "scopes": ["root"], "iat": 1, "exp": 2**40, "jti": "x"},
        {"sub": "a", "scopes": "admin", "iat": 1, "exp": 2**40, "jti": "x"},
        {"sub": 5, "scopes": ["admin"], "iat": 1, "exp": 2**40, "jti": "x"},
        {"sub": "a", "scopes": ["admin"], "iat": 1, "exp": 2**40},  # no jti
        {"sub": "a", "scopes": ["admin"], "iat": 1, "exp": 2**40, "jti": "x", "node_id": 3},
    ],
)
def test_tokens_with_bad_claims_are_malformed(authority: TokenAuthority, payload: dict) -> None:
    assert _reason(authority, jwt.encode(payload, SECRET, algorithm="HS256")) == "malformed"


def test_revocation_is_immediate_and_persists(tmp_path) -> None:
    catalog = Catalog.open_in(tmp_path)
    authority = TokenAuthority(SECRET, RevocationList(CatalogRevocationStore(catalog)))
    admin = authority.verify(authority.mint(subject="a", scopes=["admin"], ttl_seconds=60)[0])
    token, _ = authority.mint(subject="b", scopes=["metrics:read"], ttl_seconds=60)
    authority.revoke(token, by=admin)
    assert _reason(authority, token) == "revoked"
    catalog.close()
    reopened = Catalog.open_in(tmp_path)
    again = TokenAuthority(SECRET, RevocationList(CatalogRevocationStore(reopened)))
    assert _reason(again, token) == "revoked"
    reopened.close()


def test_only_admin_or_the_token_itself_may_revoke(authority: TokenAuthority) -> None:
    t1, c1 = authority.mint(subject="a", scopes=["metrics:read"], ttl_seconds=60)
    t2, _ = authority.mint(subject="b", scopes=["metrics:read"], ttl_seconds=60)
    with pytest.raises(Forbidden):
        authority.revoke(t2, by=c1)
    authority.revoke(t1, by=c1)
    assert _reason(authority, t1) == "revoked"
    with pytest.raises(InvalidRequest):
        authority.revoke("garbage", by=c1)


def test_mint_rejects_unknown_scopes(authority: TokenAuthority) -> None:
    with pytest.raises(InvalidRequest) as info:
        authority.mint(subject="a", scopes=["root"], ttl_seconds=60)
    assert info.value.details["field"] == "scopes"


def test_a_verified_token_still_expires_and_is_still_revocable(tmp_path) -> None:
    catalog = Catalog.open_in(tmp_path)
    authority = TokenAuthority(b"k" * 32, RevocationList(CatalogRevocationStore(catalog)))
    short, _ = authority.mint(subject="a", scopes=["metrics:read"], ttl_seconds=1)
    long, _ = authority.mint(subject="b", scopes=["metrics:read"], ttl_seconds=600)
    admin = authority.verify(authority.mint(subject="c", scopes=["admin"], ttl_seconds=60)[0])
    assert authority.verify(short).subject == "a"  # now remembered as verified
    assert authority.verify(long).subject == "b"
    authority.revoke(long, by=admin)
    with pytest.raises(InvalidToken) as revoked:
        authority.verify(long)
    assert revoked.value.reason == "revoked"
    time.sleep(1.1)
    with pytest.raises(InvalidToken) as expired:
        authority.verify(short)
    assert expired.value.reason == "expired"
    catalog.close()
