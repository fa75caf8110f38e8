"""Service settings, read only from environment variables (one cached `from_env()`)."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SCOPES = ("predict", "feedback", "admin")
# What a key listed without scopes may do: serve and label, not read lineage or identities.
DEFAULT_KEY_SCOPES = ("predict", "feedback")
RATE_UNITS = ("second", "minute", "hour", "day")
_RATE = re.compile(r"(\d+)\s*/\s*([a-z]+)")


class SettingsError(ValueError):
    """An environment variable is missing or holds a value the service cannot use."""


@dataclass(frozen=True)
class ApiKey:
    """One accepted X-API-Key and the scopes it grants; `name` identifies it in limits and logs
    without the secret itself."""

    secret: str
    scopes: frozenset[str]
    name: str


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; see the README's service section. Constructing one
    checks it: the service refuses to start open, or without its prediction log, by accident."""

    model_pin: Path
    tracking_uri: str | None = None
    cache_dir: Path = Path(tempfile.gettempdir()) / "gitops-ml-models"
    pin_poll_seconds: float = 2.0
    max_batch_rows: int = 1000
    # Concurrent requests' rows answered by one model call, up to this many (0: each alone).
    # Eight 100-row requests share a call at 2048 rows; at 256 only two did (benchmarks/).
    coalesce_rows: int = 2048
    # Model calls of at least this many rows run in the model's own thread, overlapping the
    # loop's work on the next requests (0: every call on the loop). Below it the hand-off
    # costs more than it saves: single rows lost a tenth of their throughput (benchmarks/).
    model_thread_rows: int = 256
    max_body_bytes: int = 1_048_576
    api_keys: tuple[ApiKey, ...] = ()
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    allow_anonymous: bool = False
    rate_limit: tuple[int, str] | None = None  # (requests, unit) per caller
    database_url: str | None = None
    prediction_log: bool = True
    log_buffer_rows: int = 50_000
    log_batch_rows: int = 5000
    log_flush_seconds: float = 1.0
    quality_refresh_seconds: float = 5.0
    drift_window_rows: int = 1000
    drift_min_rows: int = 100
    feedback_window_rows: int = 1000
    shadow_queue_size: int = 1000
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not self.auth_enabled and not self.allow_anonymous:
            raise SettingsError(
                "no authentication is configured: set API_KEYS, or JWT_SECRET / JWT_PUBLIC_KEY "
                "with JWT_AUDIENCE and JWT_ISSUER; or set ALLOW_ANONYMOUS=true to serve anyone "
                "(local runs only)")
        if self.jwt_secret and self.jwt_public_key:
            raise SettingsError("set JWT_SECRET or JWT_PUBLIC_KEY, not both")
        if self.jwt_key:
            if not (self.jwt_audience and self.jwt_issuer):
                raise SettingsError("a JWT key needs JWT_AUDIENCE and JWT_ISSUER: tokens must "
                                    "name this service and their issuer")
            _check_jwt_key(self.jwt_key, self.jwt_algorithms,
                           "JWT_PUBLIC_KEY" if self.jwt_public_key else "JWT_SECRET")
        if self.prediction_log and not self.database_url:
            raise SettingsError(
                "DATABASE_URL is not set: the prediction log and feedback need a database "
                "(PostgreSQL in a cluster; `mlops serve` passes the embedded SQLite file); set "
                "PREDICTION_LOG=off to serve without logging predictions or taking feedback")

    @property
    def jwt_key(self) -> str | None:
        return self.jwt_public_key or self.jwt_secret

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.jwt_key)

    @classmethod
    def parse(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of environment variables, naming any bad one."""
        pin = env.get("MODEL_PIN", "").strip()
        if not pin:
            raise SettingsError("MODEL_PIN is not set: point it at environments/<env>/model.yaml")
        public_key = _text(env, "JWT_PUBLIC_KEY")
        default_algorithms = "RS256" if public_key else "HS256"
        return cls(
            model_pin=Path(pin),
            tracking_uri=_text(env, "MLFLOW_TRACKING_URI"),
            cache_dir=Path(_text(env, "MODEL_CACHE_DIR") or cls.cache_dir),
            pin_poll_seconds=_number(env, "PIN_POLL_SECONDS", cls.pin_poll_seconds, float, 0),
            max_batch_rows=_number(env, "MAX_BATCH_ROWS", cls.max_batch_rows, int, 1),
            coalesce_rows=_number(env, "COALESCE_ROWS", cls.coalesce_rows, int, 0),
            model_thread_rows=_number(env, "MODEL_THREAD_ROWS", cls.model_thread_rows, int, 0),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, int, 1024),
            api_keys=parse_api_keys(env.get("API_KEYS", "")),
            jwt_secret=_text(env, "JWT_SECRET"),
            jwt_public_key=public_key,
            jwt_algorithms=_list(env, "JWT_ALGORITHMS") or (default_algorithms,),
            jwt_audience=_text(env, "JWT_AUDIENCE"),
            jwt_issuer=_text(env, "JWT_ISSUER"),
            allow_anonymous=_flag(env, "ALLOW_ANONYMOUS", False),
            rate_limit=parse_rate(env.get("RATE_LIMIT", "")),
            database_url=_text(env, "DATABASE_URL"),
            prediction_log=_flag(env, "PREDICTION_LOG", True, ("on", "off")),
            log_buffer_rows=_number(env, "LOG_BUFFER_ROWS", cls.log_buffer_rows, int, 1),
            log_batch_rows=_number(env, "LOG_BATCH_ROWS", cls.log_batch_rows, int, 1),
            log_flush_seconds=_number(env, "LOG_FLUSH_SECONDS", cls.log_flush_seconds, float,
                                      0.01),
            quality_refresh_seconds=_number(env, "QUALITY_REFRESH_SECONDS",
                                            cls.quality_refresh_seconds, float, 0),
            drift_window_rows=_number(env, "DRIFT_WINDOW_ROWS", cls.drift_window_rows, int, 10),
            drift_min_rows=_number(env, "DRIFT_MIN_ROWS", cls.drift_min_rows, int, 1),
            feedback_window_rows=_number(env, "FEEDBACK_WINDOW_ROWS",
                                         cls.feedback_window_rows, int, 1),
            shadow_queue_size=_number(env, "SHADOW_QUEUE_SIZE", cls.shadow_queue_size, int, 1),
            log_level=(_text(env, "LOG_LEVEL") or cls.log_level).lower(),
        )


def _check_jwt_key(key: str, algorithms: tuple[str, ...], name: str) -> None:
    """Refuse a key that cannot verify every accepted algorithm, at start rather than per request:
    one kind of key per service (a public key taken as an HMAC secret, or the reverse, is the
    algorithm-confusion attack)."""
    import jwt
    from jwt.algorithms import get_default_algorithms

    known = get_default_algorithms()
    for algorithm in algorithms:
        if algorithm not in known or algorithm == "none":
            raise SettingsError(f"JWT_ALGORITHMS: {algorithm!r} is not a signing algorithm "
                                f"(e.g. {'RS256' if name == 'JWT_PUBLIC_KEY' else 'HS256'})")
        try:
            known[algorithm].prepare_key(key)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SettingsError(f"{name} cannot verify {algorithm} tokens ({exc}); set "
                                "JWT_ALGORITHMS to the algorithms of that key") from None


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """API_KEYS: comma-separated `key` or `key=scope+scope` (scopes: predict, feedback, admin;
    a bare key gets predict and feedback). A key may end in base64 padding (`abc==`)."""
    keys: list[ApiKey] = []
    for number, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        secret, equals, granted = entry.rpartition("=")
        if not equals or not granted:  # no scopes named (a trailing "=" is base64 padding)
            secret, scopes = entry, frozenset(DEFAULT_KEY_SCOPES)
        else:
            names = granted.split("+")
            if unknown := [s for s in names if s not in SCOPES]:
                raise SettingsError(f"API_KEYS: key {number} names scope {unknown[0]!r}; the "
                                    f"scopes are {', '.join(SCOPES)} (key=scope+scope)")
            scopes = frozenset(names)
        if not secret.strip() or secret != secret.strip():
            raise SettingsError(f"API_KEYS: key {number} is empty or has spaces around it")
        if any(k.secret == secret for k in keys):
            raise SettingsError(f"API_KEYS: key {number} is listed twice")
        keys.append(ApiKey(secret, scopes, f"key{number}"))
    return tuple(keys)


def parse_rate(text: str) -> tuple[int, str] | None:
    """RATE_LIMIT: `N/unit` (second, minute, hour or day) per caller; empty: no limit."""
    text = text.strip().lower()
    if not text:
        return None
    match = _RATE.fullmatch(text)
    if not match or match.group(2).rstrip("s") not in RATE_UNITS or int(match.group(1)) < 1:
        raise SettingsError(f"RATE_LIMIT={text!r} is not N/unit with N >= 1 and unit one of "
                            f"{', '.join(RATE_UNITS)} (e.g. 100/second)")
    return int(match.group(1)), match.group(2).rstrip("s")


@lru_cache(maxsize=1)
def from_env() -> Settings:
    """The settings of this process, read once from `os.environ`."""
    return Settings.parse(os.environ)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())


def _flag(env: Mapping[str, str], name: str, default: bool,
          words: tuple[str, str] = ("true", "false")) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in words:
        raise SettingsError(f"{name}={raw!r} must be {words[0]} or {words[1]}")
    return raw == words[0]


def _number(env: Mapping[str, str], name: str, default, kind, minimum):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value
