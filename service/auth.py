"""API keys (X-API-Key) and JWT bearer tokens (pyjwt) for the prediction endpoints.

When neither is configured the endpoints are open. A token must carry the endpoint's scope
(`predict` or `feedback`) in its `scope` (space-separated) or `scopes` claim; an API key is
granted every scope.
"""
from __future__ import annotations

import hmac
from typing import Any

import jwt
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from service.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gitops-ml", charset="UTF-8"'}


class Authenticator:
    """Checks one request's credentials for the scope its route needs."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_enabled
        self._keys = [k.encode() for k in settings.api_keys]
        self._jwt_key = settings.jwt_public_key or settings.jwt_secret
        self._algorithms = list(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    def check(self, headers: Any, scope: str) -> None:
        """Return if allowed; raise 401 (who are you?) or 403 (not allowed to) saying why."""
        if not self.enabled:
            return
        key = headers.get("x-api-key")
        if key is not None:
            if self._keys and any(hmac.compare_digest(key.encode(), k) for k in self._keys):
                return
            raise NotAuthorizedException("the API key is not valid", headers=CHALLENGE)
        authorization = headers.get("authorization")
        if not authorization:
            raise NotAuthorizedException(
                "credentials required: send an X-API-Key header or Authorization: Bearer <token>",
                headers=CHALLENGE)
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("the Authorization header must be 'Bearer <token>'",
                                         headers=CHALLENGE)
        claims = self._decode(token.strip())
        granted = claims.get("scope", claims.get("scopes", []))
        if isinstance(granted, str):
            granted = granted.split()
        if scope not in granted:
            raise PermissionDeniedException(f"the token does not grant the '{scope}' scope")

    def _decode(self, token: str) -> dict[str, Any]:
        if not self._jwt_key:
            raise NotAuthorizedException("bearer tokens are not accepted here; use X-API-Key",
                                         headers=CHALLENGE)
        try:
            return jwt.decode(token, self._jwt_key, algorithms=self._algorithms,
                              audience=self._audience, issuer=self._issuer,
                              options={"require": ["exp"]})
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
        except jwt.InvalidTokenError as exc:
            reason = f"the token is not valid ({exc})"
        raise NotAuthorizedException(reason, headers=CHALLENGE)

