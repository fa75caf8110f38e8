"""API keys (X-API-Key) and JWT bearer tokens (pyjwt): who is calling, and what they may do.

Scopes: `predict` (every prediction protocol), `feedback` (POST /v1/feedback) and `admin`
(lineage, training parameters and who promoted, in /v1/model). A key grants the scopes
API_KEYS lists for it; a token those in its `scope` (space-separated) or `scopes` claim. Every
credential that cannot be read or verified is a 401 saying why, never a server error.
With ALLOW_ANONYMOUS=true and no credentials configured, everyone may do everything.
"""
from __future__ import annotations

import hmac
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.settings import SCOPES, Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gitops-ml", charset="UTF-8"'}
EVERY_SCOPE = frozenset(SCOPES)


def refuse(reason: str) -> NotAuthorizedException:
    """A 401 saying why, with the challenge a client needs."""
    return NotAuthorizedException(reason, headers=CHALLENGE)


class Authenticator:
    """Checks one request's credentials for the scope its route needs."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_enabled
        self._keys = [(k.secret.encode(), k.scopes) for k in settings.api_keys]
        self._algorithms = list(settings.jwt_algorithms)
        # Parsed once here (settings already checked it fits every algorithm), not per token.
        self._jwt_key = (get_default_algorithms()[self._algorithms[0]].prepare_key(
            settings.jwt_key) if settings.jwt_key else None)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    def check(self, headers: Any, scope: str) -> None:
        """Return if allowed; raise 401 (who are you?) or 403 (not allowed to) saying why."""
        if not self.enabled:
            return
        granted = self.scopes(headers)
        if granted is None:
            raise refuse("credentials required: send an X-API-Key header or "
                         "Authorization: Bearer <token>")
        if scope not in granted:
            raise PermissionDeniedException(
                f"the credentials do not grant the '{scope}' scope")

    def allows(self, headers: Any, scope: str) -> bool:
        """Whether the request may see what `scope` guards (no credentials: no; bad ones: 401)."""
        if not self.enabled:
            return True
        granted = self.scopes(headers)
        return granted is not None and scope in granted

    def scopes(self, headers: Any) -> frozenset[str] | None:
        """The scopes the request's credentials grant; None when it sends none."""
        key = headers.get("x-api-key")
        if key is not None:
            # Bytes, so that any header text compares (compare_digest refuses non-ASCII str).
            sent = key.encode("utf-8", "surrogateescape")
            for secret, scopes in self._keys:
                if hmac.compare_digest(sent, secret):
                    return scopes
            raise refuse("the API key is not valid")
        authorization = headers.get("authorization")
        if not authorization:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise refuse("the Authorization header must be 'Bearer <token>'")
        return _granted(self._decode(token.strip()))

    def _decode(self, token: str) -> dict[str, Any]:
        if self._jwt_key is None:
            raise refuse("bearer tokens are not accepted here; use X-API-Key")
        try:
            return jwt.decode(token, self._jwt_key, algorithms=self._algorithms,
                              audience=self._audience, issuer=self._issuer,
                              options={"require": ["exp", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            reason = "the token has expired"
        except jwt.InvalidAudienceError:
            reason = f"the token is not for audience {self._audience!r}"
        except jwt.InvalidIssuerError:
            reason = f"the token is not from issuer {self._issuer!r}"
        except jwt.MissingRequiredClaimError as exc:
            reason = f"the token has no '{exc.claim}' claim"
        except jwt.InvalidSignatureError:
            reason = "the token's signature is not valid"
        except jwt.InvalidAlgorithmError:
            reason = f"the token's algorithm is not one of {', '.join(self._algorithms)}"
        except jwt.InvalidKeyError:
            reason = "the token is not signed with the kind of key this service holds"
        except jwt.PyJWTError as exc:
            reason = f"the token is not valid ({exc})"
        except (ValueError, TypeError, KeyError):  # whatever a crafted token trips in a library
            reason = "the token is not valid (it cannot be read)"
        raise refuse(reason)


def _granted(claims: dict[str, Any]) -> frozenset[str]:
    """The scopes of a verified token: `scope` as text, or `scopes` as a list of text."""
    if "scope" in claims:
        granted = claims["scope"]
        if not isinstance(granted, str):
            raise refuse("the token's 'scope' claim must be text (scopes separated by spaces)")
        return frozenset(granted.split())
    granted = claims.get("scopes", [])
    if not isinstance(granted, list) or not all(isinstance(s, str) for s in granted):
        raise refuse("the token's 'scopes' claim must be a list of text")
    return frozenset(granted)
