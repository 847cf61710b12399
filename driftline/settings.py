"""One settings object per process, read from ``DRIFTLINE_*`` environment variables.

Every environment variable Driftline reads is a field here (prefix ``DRIFTLINE_``,
upper case): ``DRIFTLINE_BOOTSTRAP_SERVERS``, ``DRIFTLINE_TOPIC_PREFIX``,
``DRIFTLINE_SASL_PASSWORD``, ... Read once in ``main()`` and passed down.

>>> s = Settings(bootstrap_servers="127.0.0.1:9999", topic_prefix="x.")
>>> s.topic("features")
'x.features'
>>> s.group("trainer"), Settings().group("worker")
('x-trainer', 'driftline-worker')
>>> "hunter2" in repr(Settings(sasl_password="hunter2"))
False
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TableStore = Literal["memory://", "rocksdb://"]


class Settings(BaseSettings):
    """Driftline's settings. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore", frozen=True)

    # Kafka
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    topic_prefix: str = Field("driftline.", description="Prefix of every Driftline topic name.")
    data_partitions: int = Field(
        6, ge=1, description="Partitions of features, predictions, labels and outcomes."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of every topic.")
    client_id: str = Field(
        "driftline",
        description="Kafka client.id prefix (logs, quotas). Consumer groups and "
        "transactional ids derive from the topic prefix instead (Settings.group).",
    )
    broker_dir: Path | None = Field(
        None,
        description="Directory of the local development broker (`driftline broker`): its "
        "config, data, pid and port. Every `driftline` command finds the local broker "
        "there; when it runs and DRIFTLINE_BOOTSTRAP_SERVERS is not set, they all use it. "
        "Default: ~/.cache/driftline/broker ($XDG_CACHE_HOME/driftline/broker), outside "
        "the checkout.",
    )

    # Security, passed alike to Faust (aiokafka) and confluent-kafka (librdkafka)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    # Models, join and workers
    models_file: Path | None = Field(None, description="TOML file of per-model configuration.")
    join_ttl_ms: int = Field(3_600_000, ge=1, description="Join TTL of models not configured.")
    monitor_interval_s: float = Field(5.0, gt=0, description="Seconds between metric snapshots.")
    table_store: TableStore = Field(
        "memory://",
        description="Store of the join state: memory:// is rebuilt from the changelog "
        "at each assignment; rocksdb:// (rocksdict) keeps state on disk under "
        "data_dir/join, for state larger than memory and faster restarts.",
    )
    data_dir: Path | None = Field(
        None,
        description="The worker's data directory (Faust's datadir; RocksDB tables live "
        "under it). Default: <app id>-data in the working directory.",
    )
    instance_id: str | None = Field(
        None,
        description="Stable name of this worker process among its group (e.g. a pod "
        "ordinal): its transactional ids become <group>-<instance_id>, so a restarted "
        "worker fences its predecessor's open transaction at once. Unique per live "
        "worker. Default: a random id per process (a crashed worker's open transaction "
        "then blocks read_committed readers until transaction_timeout_ms).",
    )
    transaction_timeout_ms: int | None = Field(
        None,
        ge=1_000,
        description="Kafka transaction timeout of the scorer and join: how long a "
        "crashed worker's open transaction can hold back read_committed readers. "
        "Default: 10 s at replication factor 1, 30 s on a replicated cluster, longer "
        "than a partition leader's failover (docs/scaling.md).",
    )
    session_timeout_ms: int | None = Field(
        None,
        ge=1_000,
        description="Consumer-group session timeout of the worker's scorer and join: how "
        "long a dead worker keeps its partitions. Default: 6 s at replication factor 1, "
        "20 s on a replicated cluster, longer than a group coordinator's failover "
        "(docs/scaling.md).",
    )
    worker_web_port: int = Field(6066, description="Worker web server (status page, /metrics).")
    worker_web_bind: str = Field(
        "127.0.0.1", description="Address the worker web server binds (0.0.0.0 in containers)."
    )
    metrics_port: int = Field(9108, description="Prometheus port of the trainer and projector.")

    # Metadata store and registry
    sql_url: str = Field(
        "sqlite:///driftline.db",
        description="SQLAlchemy URL of the metadata view: sqlite:///FILE, or "
        "postgresql://USER:PASSWORD@HOST/DB (pip install 'driftline[postgres]').",
    )
    artifact_dir: Path = Field(
        Path("artifacts"),
        description="Where the trainer writes artifacts too large to travel inline "
        "(a path every scorer can read, e.g. a shared volume).",
    )
    artifact_inline_max_bytes: int = Field(
        512_000, ge=0, description="Artifacts up to this size travel inside the registry record."
    )
    max_challengers: int = Field(
        3,
        ge=1,
        description="Challengers a model holds at most (each scored in shadow); one more "
        "archives the oldest. Read by the trainer and the models commands.",
    )
    live: bool = Field(
        True,
        description="Whether the trainer runs its live loop: online challengers learning every "
        "outcome, promotion and rollback on live paired evidence (docs/training.md).",
    )
    signing_key: SecretStr = Field(
        SecretStr("driftline-dev-signing-key"),
        description="HMAC key that signs model artifacts; set a real secret in production.",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_legal(cls, v: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(v) <= allowed:
            raise ValueError(f"topic prefix {v!r} may hold only letters, digits, '.', '_' and '-'")
        return v

    def topic(self, name: str) -> str:
        """Full name of the Driftline topic ``name`` (``features``, ``registry``, ...)."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """Consumer group (and transactional id stem) of the process role ``name`` in this
        deployment: the topic prefix with '.' as '-', then ``name``. The default prefix
        gives the names Driftline always used (``driftline-worker``, ``driftline-trainer``).
        Two deployments with different prefixes on one cluster share no group and no
        transactional id, whatever their client ids (prefixes that differ only by '.'
        against '-' would collide)."""
        return f"{self.topic_prefix}{name}".replace(".", "-")

    def sasl_password_value(self) -> str | None:
        """The SASL password in clear, for client configuration only."""
        return None if self.sasl_password is None else self.sasl_password.get_secret_value()
