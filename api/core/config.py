"""Deployment settings of the service, read from the environment and ``.env``: ``Settings``
(``IMAGEFORGE_*``) and the OpenAI-images endpoints' own ``OpenAIImagesSettings``.

Only ``api/`` reads these. The graph gets what it needs as ``Context`` (per-run settings,
backend choices) and the built services; secrets stop here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imageforge.agents.settings import LLMSettings
from imageforge.agents.usage import DEFAULT_PRICES, ModelPrice
from imageforge.api.core.throttle import check_rate
from imageforge.graph.context import BackendSettings
from imageforge.scoring.settings import ScorerSettings
from imageforge.tools.settings import GeneratorSettings
from imageforge.traces.retention import RetentionPolicy

__all__ = ["PLACEHOLDER_SECRET", "OpenAIImagesSettings", "Settings", "get_settings"]

PLACEHOLDER_SECRET = "changethis"
"""The shipped JWT secret; refused outside dev mode so nobody deploys it by accident."""

_MIN_SECRET_LENGTH = 32


class OpenAIImagesSettings(BaseModel):
    """Deployment knobs of the /v1/images endpoints (``IMAGEFORGE_OPENAI_IMAGES__<NAME>``), a group
    of ``Settings``; a test may set ``app.state.openai_images_settings`` instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variations: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Variations scored per request; unset: max(4, n). A request's n may not exceed it.",
    )
    timeout_s: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="How long a request waits for its generation; then it is cancelled (504).",
    )
    max_resolution: int = Field(
        2048,
        ge=64,
        le=2048,
        description="Cap on the long edge a size asks for (tests use a small one for speed).",
    )


class Settings(BaseSettings):
    """Everything a deployment sets; each field is ``IMAGEFORGE_<NAME>`` in the environment, a nested
    one ``IMAGEFORGE_<GROUP>__<NAME>`` (README, "Configuration", has the table)."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGEFORGE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Storage ---------------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="SQLite files, checkpoints and uploads live here.")
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL; default sqlite:///<data_dir>/imageforge.db. postgresql://... switches to PostgreSQL."
        ),
    )
    trace_root: Path = Field(Path("output/reference_image_traces"), description="One trace folder per generation.")
    trace_retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="How long traces and uploaded references are kept (IMAGEFORGE_TRACE_RETENTION__MODE, ...).",
    )

    # Server ----------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface `imageforge serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `imageforge serve` listens on.")
    dev_mode: bool = Field(False, description="Disables auth (one local user). Never on a shared host.")

    # Jobs ------------------------------------------------------------------------------------
    workers: int = Field(2, ge=1, le=64, description="Storyboards that run at the same time.")
    queue_size: int = Field(100, ge=1, le=100_000, description="Jobs that may wait; a full queue answers 429.")
    retry_after_s: int = Field(30, ge=1, description="Retry-After sent with a 429.")
    max_jobs_per_user: int = Field(
        4, ge=1, le=10_000, description="One user's queued plus running jobs; more answers 429 (fair admission)."
    )
    smart_image_timeout_s: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="How long a smart-image request waits for its job; then it is cancelled (504).",
    )
    broker_url: str | None = Field(
        None,
        description="redis://host:6379/0 switches to distributed execution: the API runs no job, "
        "`imageforge worker` processes (Celery) do; unset: jobs run inside `imageforge serve`.",
    )
    broker_visibility_timeout_s: int = Field(
        6 * 3600,
        ge=60,
        description="Seconds before Redis hands an unacknowledged job to another worker; longer than the "
        "longest job. Only a backstop: a lost worker's job is re-queued by its stopped heartbeat in seconds.",
    )
    lease_ttl_s: float = Field(
        15.0, gt=0, description="A running job's lease in Redis expires this long after its worker's last heartbeat."
    )
    heartbeat_interval_s: float = Field(
        3.0, gt=0, description="How often a worker renews its leases, publishes its presence and polls cancels."
    )
    max_worker_losses: int = Field(
        3, ge=1, le=100, description="A job whose worker died this many times while running it is failed."
    )

    # Uploads ---------------------------------------------------------------------------------
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted reference image file.")
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=64 * 64,
        description="Largest accepted width x height (16.7 MP: any camera photo up to 4096x4096), checked from the "
        "header before decoding; bounds one decode to about 67 MB of RGBA.",
    )
    upload_max_side: int = Field(
        2048,
        ge=64,
        le=16384,
        description="Uploads are reduced to this long edge while decoding (the largest frame a run renders).",
    )
    upload_decode_concurrency: int = Field(
        2, ge=1, le=64, description="Uploaded images decoded at the same time; the rest wait their turn."
    )
    user_storage_quota_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="Bytes of traces and uploads one user may keep (2 GiB), on top of retention; a submission or "
        "upload once it is reached answers 413. 0 turns the quota off.",
    )
    storage_quota_cache_s: float = Field(
        30.0, ge=0, description="How long one measurement of a user's stored bytes is reused by the quota check."
    )
    max_batch_items: int = Field(50, ge=1, le=1000, description="Storyboards per batch request.")

    # Auth ------------------------------------------------------------------------------------
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        "HS256", description="Token signature: HS256 (a secret) or RS256 (keys)."
    )
    jwt_secret: SecretStr = Field(SecretStr(PLACEHOLDER_SECRET), description="HS256 signing secret (32+ characters).")
    jwt_private_key_path: Path | None = Field(None, description="RS256: PEM private key that signs tokens.")
    jwt_public_key_path: Path | None = Field(None, description="RS256: PEM public key that verifies tokens.")
    access_token_expire_minutes: int = Field(60 * 24, ge=1, description="Lifetime of an access token.")
    login_limit_per_account: Annotated[str, AfterValidator(check_rate)] = Field(
        "10/minute",
        description="Login attempts one e-mail address may make (a `limits` rate: `10/minute`, `50/hour`); "
        "more answer 429 with Retry-After. A successful login resets the count.",
    )
    login_limit_per_address: Annotated[str, AfterValidator(check_rate)] = Field(
        "30/minute",
        description="Login attempts one client address may make, over all accounts; more answer 429. "
        "Counted in Redis when IMAGEFORGE_BROKER_URL is set, else in the process.",
    )

    # Backends: each layer's own settings, nested (IMAGEFORGE_LLM__BASE_URL, IMAGEFORGE_GENERATOR__MODEL,
    # IMAGEFORGE_SCORING__SCORERS, ...). A request may pick among backend names, never URLs or paths.
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The agents' chat model.")
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings, description="The image generator.")
    scoring: ScorerSettings = Field(default_factory=ScorerSettings, description="The scorers and their models.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps': where models run.")
    openai_images: OpenAIImagesSettings = Field(
        default_factory=OpenAIImagesSettings, description="The OpenAI-compatible /v1/images endpoints."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("IMAGEFORGE_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="Key for OpenAI's chat and image APIs; OPENAI_API_KEY is read too.",
    )

    # Estimates (seed 004: ~$0.10 and ~60-90 s per scene at 4 variations x 4 iterations) -----
    image_price_usd: dict[str, float] = Field(
        default_factory=lambda: {"openai": 0.02, "diffusers": 0.0, "sketch": 0.0},
        description="Price of one generated image per generator backend.",
    )
    llm_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million prompt and completion tokens per model name, for measured costs "
        '(JSON: {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}); a model not listed is not priced.',
    )
    llm_call_price_usd: dict[str, float] = Field(
        default_factory=lambda: {"openai": 0.0025, "heuristic": 0.0},
        description="Price of one agent call per LLM backend (two calls per enhancement iteration).",
    )
    image_seconds: dict[str, float] = Field(
        default_factory=lambda: {"openai": 10.0, "diffusers": 10.0, "sketch": 0.05},
        description="Typical seconds per generated image per generator backend.",
    )
    llm_call_seconds: dict[str, float] = Field(
        default_factory=lambda: {"openai": 2.5, "heuristic": 0.01},
        description="Typical seconds per agent call per LLM backend.",
    )

    status_cache_entries: int = Field(
        512, ge=1, description="Status documents kept in memory between polls (invalidated on every change)."
    )
    user_cache_entries: int = Field(
        10_000,
        ge=0,
        description="Distributed mode: callers kept in memory between requests, each dropped the moment "
        "`imageforge users` revokes it (0: look every caller up in the database).",
    )

    # Health and metrics ----------------------------------------------------------------------
    slo_p95_s: float = Field(30.0, gt=0, description="Seed 002: P95 image-generation time target.")

    @field_validator("llm", "generator", mode="before")
    @classmethod
    def _backend_name(cls, value: object) -> object:
        """``Settings(llm="heuristic")`` as ``Settings(llm={"backend": "heuristic"})``; in the environment
        the name is ``IMAGEFORGE_LLM__BACKEND``."""
        return {"backend": value} if isinstance(value, str) else value

    def check_secrets(self) -> None:
        """Refuse to serve with the shipped placeholder secret, a short one or missing RS256 keys.

        A check the server runs at start-up (``create_app``) rather than a validator, so that
        ``imageforge generate`` reads the same settings tree without needing a JWT secret.
        """
        if self.dev_mode:
            return
        if self.jwt_algorithm == "HS256":
            secret = self.jwt_secret.get_secret_value()
            if secret == PLACEHOLDER_SECRET:
                raise ValueError(
                    "IMAGEFORGE_JWT_SECRET is the placeholder 'changethis'; set a random secret "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))') or IMAGEFORGE_DEV_MODE=true."
                )
            if len(secret) < _MIN_SECRET_LENGTH:
                raise ValueError(
                    f"IMAGEFORGE_JWT_SECRET must be at least {_MIN_SECRET_LENGTH} characters, got {len(secret)}."
                )
        else:
            missing = [
                name
                for name, value in (
                    ("jwt_private_key_path", self.jwt_private_key_path),
                    ("jwt_public_key_path", self.jwt_public_key_path),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"jwt_algorithm RS256 needs {' and '.join(missing)} (PEM files).")

    def check_execution(self) -> None:
        """Refuse distributed execution on SQLite: the API and the workers share users,
        generations and checkpoints, and a SQLite file cannot be shared between machines."""
        if self.broker_url and not self.is_postgres:
            raise ValueError(
                "IMAGEFORGE_BROKER_URL (distributed workers) needs PostgreSQL: set "
                "IMAGEFORGE_DATABASE_URL=postgresql+psycopg://user:password@host/db, or unset the broker URL."
            )
        if self.broker_url and self.heartbeat_interval_s >= self.lease_ttl_s:
            raise ValueError("IMAGEFORGE_HEARTBEAT_INTERVAL_S must be shorter than IMAGEFORGE_LEASE_TTL_S.")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'imageforge.db'}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith(("postgresql", "postgres"))

    @property
    def checkpoint_path(self) -> Path:
        """The SQLite file of the LangGraph checkpointer (when the database is not PostgreSQL)."""
        return self.data_dir / "checkpoints.db"

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    def default_backends(self) -> BackendSettings:
        """The deployment's backends, in the graph's per-run form; the generation cache
        defaults to DATA_DIR/cache."""
        generator = self.generator
        if generator.cache_dir is None:
            generator = generator.model_copy(update={"cache_dir": str(self.data_dir / "cache")})
        return BackendSettings(llm=self.llm, generator=generator, scoring=self.scoring, device=self.device)


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once. Tests build their own ``Settings`` and pass it to ``create_app``."""
    return Settings()


def environment_names(model: type[BaseModel] = Settings, prefix: str = "IMAGEFORGE_") -> list[tuple[str, Any, str]]:
    """Every option of the settings tree as (environment name, default, description), nested
    groups flattened with ``__``: the source of README's settings table (a test keeps them equal)."""
    rows: list[tuple[str, Any, str]] = []
    for name, field in model.model_fields.items():
        env = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(environment_names(annotation, env + "__"))
            continue
        default = field.get_default(call_default_factory=True)
        rows.append((env, "(secret)" if isinstance(default, SecretStr) else default, field.description or ""))
    return rows


def settings_markdown() -> str:
    """README's settings table (the test in tests/test_settings_docs.py says how to print it)."""
    lines = ["| Environment | Default | Meaning |", "|---|---|---|"]
    for env, default, description in environment_names():
        if isinstance(default, Path):
            default = str(default)
        if isinstance(default, tuple):
            default = ",".join(default)
        if isinstance(default, dict):
            plain = {
                key: value.model_dump() if isinstance(value, BaseModel) else value for key, value in default.items()
            }
            default = json.dumps(plain, separators=(",", ":"))
        shown = "none" if default is None else f"`{default}`"
        lines.append(f"| `{env}` | {shown} | {description} |")
    return "\n".join(lines)
