"""Tokens: minting, verification, scopes, revocation, and the signing secret."""

from hakon.auth.tokens import ADMIN, SCOPES, TokenAuthority, TokenClaims

__all__ = ["ADMIN", "SCOPES", "TokenAuthority", "TokenClaims"]
