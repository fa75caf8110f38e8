"""Service settings, read only from environment variables (one cached `from_env()`)."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable is missing or holds a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; see the README's service section."""

    model_pin: Path
    tracking_uri: str | None = None
    cache_dir: Path = Path(tempfile.gettempdir()) / "gitops-ml-models"
    pin_poll_seconds: float = 2.0
    max_batch_rows: int = 1000
    max_body_bytes: int = 1_048_576
    api_keys: tuple[str, ...] = ()
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    drift_window_rows: int = 1000
    drift_min_rows: int = 100
    feedback_window_rows: int = 1000
    prediction_memory: int = 100_000
    shadow_queue_size: int = 1000
    log_level: str = "info"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.jwt_secret or self.jwt_public_key)

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
            max_body_bytes=_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, int, 1024),
            api_keys=_list(env, "API_KEYS"),
            jwt_secret=_text(env, "JWT_SECRET"),
            jwt_public_key=public_key,
            jwt_algorithms=_list(env, "JWT_ALGORITHMS") or (default_algorithms,),
            jwt_audience=_text(env, "JWT_AUDIENCE"),
            jwt_issuer=_text(env, "JWT_ISSUER"),
            drift_window_rows=_number(env, "DRIFT_WINDOW_ROWS", cls.drift_window_rows, int, 10),
            drift_min_rows=_number(env, "DRIFT_MIN_ROWS", cls.drift_min_rows, int, 1),
            feedback_window_rows=_number(env, "FEEDBACK_WINDOW_ROWS",
                                         cls.feedback_window_rows, int, 1),
            prediction_memory=_number(env, "PREDICTION_MEMORY", cls.prediction_memory, int, 1),
            shadow_queue_size=_number(env, "SHADOW_QUEUE_SIZE", cls.shadow_queue_size, int, 1),
            log_level=(_text(env, "LOG_LEVEL") or cls.log_level).lower(),
        )


@lru_cache(maxsize=1)
def from_env() -> Settings:
    """The settings of this process, read once from `os.environ`."""
    return Settings.parse(os.environ)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())


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
