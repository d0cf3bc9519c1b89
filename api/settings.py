"""Server settings: one pydantic-settings class (env ``CFD_*`` and a settings file).

Outside demo mode it refuses to start with an empty or well-known admin key.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_WEAK_KEYS = {"", "admin", "changeme", "secret", "password", "demo", "test", "default"}
MIN_KEY_LENGTH = 16


class Settings(BaseSettings):
    """``CFD_DATABASE_URL``, ``CFD_ADMIN_KEY`` / ``CFD_ADMIN_KEYS`` ("alice:key1,bob:key2"),
    ``CFD_HOST``, ``CFD_PORT``, ``CFD_FEED`` (synthetic | push | none), ``CFD_SESSIONS``
    (us | always), ... Also read from ``cfd-server.env`` (or ``$CFD_SETTINGS_FILE``)."""

    model_config = SettingsConfigDict(env_prefix="CFD_", env_file="cfd-server.env",
                                      extra="ignore")

    demo: bool = False
    database_url: str | None = None  # None: cfd.sqlite in the working directory
    in_memory: bool = False  # no store at all (tests); state is lost on exit
    marketdata_url: str | None = None  # None: beside an SQLite store, else the same database
    admin_key: str = ""
    admin_name: str = "admin"
    admin_keys: str = ""  # "name:key,name:key": named risk officers
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    feed: str = Field("synthetic", pattern="^(synthetic|push|none)$")
    sessions: str = Field("always", pattern="^(us|always)$")
    feed_interval_ms: int = Field(1000, ge=10, le=60_000)
    feed_seed: int = 7
    batch_max: int = Field(1024, ge=1, le=100_000)
    snapshot_every: int = Field(100_000, ge=0)
    rate_limit_per_s: float = Field(200.0, gt=0)
    rate_limit_burst: int = Field(400, ge=1)
    # X-Request-Id: a result is honoured this long (service clock), then the id is new again
    idempotency_window_s: float = Field(24 * 3600.0, gt=0)
    idempotency_cache: int = Field(100_000, ge=1)  # recent results kept in memory
    demo_accounts: int = Field(3, ge=1, le=100)
    demo_deposit: str = "100000.00"
    rollover_clock: bool = True  # start each trading date's rollover (17:00 New York)
    rollover_check_s: float = Field(30.0, gt=0)
    admin_key_generated: bool = False  # set when --demo made the admin key up
    init: bool = False  # create the store if there is none (else a missing one is refused)
    # request limits (api.limits): bodies are refused above these before they are read
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_trade_body_bytes: int = Field(16 * 1024, ge=256)  # /v1/* (trading routes)
    max_json_depth: int = Field(32, ge=2, le=1000)
    max_json_keys: int = Field(256, ge=16)  # per JSON object
    # login throttling (api.throttle)
    login_failures: int = Field(5, ge=1)  # failures in a row that lock a login
    address_failures: int = Field(20, ge=1)  # ... that lock a client address
    lockout_base_s: float = Field(1.0, gt=0)  # first lockout; doubles per further failure
    lockout_max_s: float = Field(900.0, gt=0)
    auth_concurrency: int = Field(1, ge=1, le=64)  # scrypt checks at once
    auth_queue: int = Field(32, ge=1)  # key checks waiting before 429
    # websockets
    ws_max_connections: int = Field(1000, ge=1)
    ws_max_symbols: int = Field(1024, ge=1)  # per /ws/ticks connection (a full watchlist)
    ws_queue: int = Field(1000, ge=1)  # messages queued per connection before it is dropped
    ws_token_ttl_s: float = Field(60.0, gt=0, le=3600)
    # browsers and monitoring
    cors_origins: str = ""  # "https://a.example,https://b.example"; empty: no CORS
    metrics_key: str = ""  # if set, /metrics needs Authorization: Bearer <it> (or admin)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.demo:
            if not self.admin_key and not self.admin_keys:
                self.admin_key = secrets.token_urlsafe(24)
                self.admin_key_generated = True
            return self
        keys = self.admins()
        if not keys:
            raise ValueError("set CFD_ADMIN_KEY (or CFD_ADMIN_KEYS=name:key,...): the server "
                             "refuses to run without an admin key outside --demo")
        for name, key in keys.items():
            if key.lower() in _WEAK_KEYS or len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"the admin key of {name!r} is empty, a default or shorter "
                                 f"than {MIN_KEY_LENGTH} characters: refusing to start")
        return self

    def admins(self) -> dict[str, str]:
        """Admin identity name -> key."""
        out: dict[str, str] = {}
        if self.admin_key:
            out[self.admin_name] = self.admin_key
        for item in self.admin_keys.split(","):
            if item.strip():
                name, _, key = item.strip().partition(":")
                out[name.strip()] = key.strip()
        return out


def load_settings(settings_file: str | Path | None = None, **overrides: object) -> Settings:
    if settings_file is not None:
        return Settings(_env_file=str(settings_file), **overrides)  # type: ignore[call-arg]
    return Settings(**overrides)  # type: ignore[arg-type]
