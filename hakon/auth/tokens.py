"""JWT bearer tokens (HS256): what a token may do and whether it is still good.

A token carries `sub`, `scopes`, `exp`, `iat`, `jti` and optionally a
`node_id` or `cluster_id` binding. Verification accepts HS256 only (no `none`,
no algorithm confusion) and consults the revocation list, so a revoked token
stops working at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt

from hakon.auth.revocation import RevocationList
from hakon.errors import Forbidden, InvalidRequest, Unauthorized

ADMIN = "admin"
SCOPES = (
    "metrics:write",
    "metrics:read",
    "alerts:read",
    "alerts:write",
    "registry:read",
    "registry:write",
    ADMIN,
)
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "scopes"]


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int
    token_id: str
    node_id: str | None = None
    cluster_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


class InvalidToken(Unauthorized):
    """Why a token was refused; `reason` is one of malformed, expired, bad_signature, revoked."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


class TokenAuthority:
    def __init__(self, secret: bytes, revocations: RevocationList | None = None) -> None:
        self._secret = secret
        self._revocations = revocations
        # Signature checks of tokens already verified: an agent sends the same token
        # with every request. Expiry and revocation are still checked every time.
        self._verified: dict[str, TokenClaims] = {}

    def mint(
        self,
        *,
        subject: str | None,
        scopes: Iterable[str],
        ttl_seconds: float,
        node_id: str | None = None,
        cluster_id: str | None = None,
        now: float | None = None,
    ) -> tuple[str, TokenClaims]:
        scope_list = sorted(set(scopes))
        unknown = [s for s in scope_list if s not in SCOPES]
        if unknown:
            raise InvalidRequest(
                f"unknown scope {unknown[0]!r}; known scopes: {', '.join(SCOPES)}", field="scopes"
            )
        if not scope_list:
            raise InvalidRequest("a token needs at least one scope", field="scopes")
        issued = int(now if now is not None else time.time())
        token_id = uuid.uuid4().hex
        claims = TokenClaims(
            subject=subject or f"token:{token_id[:16]}",
            scopes=frozenset(scope_list),
            issued_at=issued,
            expires_at=issued + max(1, int(ttl_seconds)),
            token_id=token_id,
            node_id=node_id,
            cluster_id=cluster_id,
        )
        payload: dict[str, Any] = {
            "sub": claims.subject,
            "scopes": scope_list,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "jti": claims.token_id,
        }
        if node_id is not None:
            payload["node_id"] = node_id
        if cluster_id is not None:
            payload["cluster_id"] = cluster_id
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def verify(self, token: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= time.time():
            claims = self._decode(token, verify_exp=True)
            if len(self._verified) >= 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if self._revocations is not None and self._revocations.is_revoked(claims.token_id):
            raise InvalidToken("revoked", "token has been revoked")
        return claims

    def revoke(self, token: str, *, by: TokenClaims) -> TokenClaims:
        """Revoke `token`; an admin may revoke any token, anyone may revoke their own."""
        try:
            claims = self._decode(token, verify_exp=False)
        except InvalidToken as exc:
            raise InvalidRequest(f"cannot revoke: {exc.message}", field="token") from None
        if not by.allows(ADMIN) and by.token_id != claims.token_id:
            raise Forbidden("revoking another token needs the admin scope")
        if self._revocations is None:
            raise RuntimeError("this authority has no revocation list")
        self._revocations.revoke(claims.token_id, claims.expires_at)
        return claims

    def _decode(self, token: str, *, verify_exp: bool) -> TokenClaims:
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise InvalidToken("malformed", "token is malformed")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": _REQUIRED_CLAIMS, "verify_exp": verify_exp},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired", "token has expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad_signature", "token signature is invalid") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed", f"token is malformed: {exc}") from None
        return _claims_from_payload(payload)


def _claims_from_payload(payload: dict[str, Any]) -> TokenClaims:
    scopes = payload.get("scopes")
    sub, jti = payload.get("sub"), payload.get("jti")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s in SCOPES for s in scopes):
        raise InvalidToken("malformed", "token has an invalid scopes claim")
    if not isinstance(sub, str) or not isinstance(jti, str):
        raise InvalidToken("malformed", "token has an invalid sub or jti claim")
    for key in ("iat", "exp"):
        if not isinstance(payload.get(key), int):
            raise InvalidToken("malformed", f"token has an invalid {key} claim")
    for key in ("node_id", "cluster_id"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise InvalidToken("malformed", f"token has an invalid {key} claim")
    return TokenClaims(
        subject=sub,
        scopes=frozenset(scopes),
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        token_id=jti,
        node_id=payload.get("node_id"),
        cluster_id=payload.get("cluster_id"),
    )
