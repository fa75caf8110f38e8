"""Credentials kept out of what the service says: /ready, errors and logs.

MLFLOW_TRACKING_URI and DATABASE_URL may carry a user and password (`scheme://user:pass@host`),
and drivers repeat them in their errors in other shapes (`password=...`, the URL unquoted).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

# userinfo of any URL in a text: scheme://user:password@  ->  scheme://***@
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)")
HIDDEN = "***"


class Redactor:
    """Scrubs the secrets of given URLs (and any URL's userinfo) from a text."""

    def __init__(self, urls: Iterable[str | None]) -> None:
        secrets: set[str] = set()
        for url in urls:
            if not url:
                continue
            try:
                parts = urlsplit(url)
                password, user = parts.password, parts.username
            except ValueError:
                continue
            # A user name alone is a token over HTTP (https://<token>@host); elsewhere it is
            # just a name (postgresql://postgres@host), too common a word to hide.
            value = password or (user if parts.scheme in ("http", "https") else None)
            if value and len(value) >= 3:
                secrets.update({value, unquote(value)})
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` without credentials."""
        text = _USERINFO.sub(rf"\1{HIDDEN}@", text)
        text = _PASSWORD.sub(rf"\1\2{HIDDEN}", text)
        for secret in self._secrets:
            text = text.replace(secret, HIDDEN)
        return text
