"""Kafka client set-up in one place: the same settings give confluent-kafka
(librdkafka) and Faust (aiokafka) the same servers, security and partitioner.

librdkafka's default partitioner differs from the Java client's and aiokafka's:
every confluent-kafka producer here uses ``murmur2_random`` so that a key lands on
the partition Faust expects, which the co-partitioned join depends on.

Settings for a replicated cluster (docs/scaling.md has the measurements): every
producer is idempotent with ``acks=all`` (a write counts once ``min.insync.replicas``
replicas hold it, and a retry after a leader change is not a duplicate);
``reconnect.backoff.max.ms`` is 1 s instead of librdkafka's 10 s (:data:`RECONNECT_MAX_MS`);
the transaction timeout and the worker loops' consumer session grow with replication
(:func:`transaction_timeout_ms`, :func:`session_timeout_ms`). Left at librdkafka's
defaults, on purpose: ``retries`` (unbounded, as idempotence wants), ``message.timeout.ms``
(5 min for plain producers; a transactional producer's is capped at its transaction
timeout), ``metadata.max.age.ms`` and ``topic.metadata.refresh.interval.ms``: a moved
leader answers NOT_LEADER_OR_FOLLOWER or refuses the connection, and librdkafka asks for
fresh metadata at once (a rolling restart moved every leadership three times with no
periodic refresh, outputs stopping at most ~3 s).

librdkafka's own log lines go to the Python logger ``driftline.librdkafka``
(:class:`LibrdkafkaLog`) instead of raw ``%4|...`` lines on stderr, with the process's
logging set-up. On a fresh broker every idempotent producer and group member first
hears "Coordinator load in progress: retrying" (a transactional producer also "Not
coordinator: retrying") while Kafka creates and loads its internal topics: harmless,
librdkafka retries, so one INFO line says so and the retries go to DEBUG.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

from driftline.settings import Settings


class LibrdkafkaLog:
    """A librdkafka ``logger``: each line to ``driftline.librdkafka`` at its level, but
    the coordinator-loading retries of a fresh broker at DEBUG, after one INFO line.

    >>> import logging
    >>> sink = LibrdkafkaLog(logging.getLogger("doctest.librdkafka"))
    >>> sink.retrying
    0
    >>> sink.log(logging.WARNING, "%s [%s] %s", "GETPID", "p#producer-1", "Failed to "
    ...          "acquire idempotence PID from broker b/1: Broker: Coordinator load in "
    ...          "progress: retrying")
    >>> sink.retrying
    1
    """

    CHATTER = (
        "oordinator load in progress",
        "COORDINATOR_LOAD_IN_PROGRESS",
        "Not coordinator: retrying",  # GETPID of a transactional producer, same moment
        "Coordinator not available: retrying",
    )

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("driftline.librdkafka")
        self.retrying = 0
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: Any) -> None:
        """What confluent-kafka calls (from the thread that polls the client)."""
        text = msg % args if args else msg
        if any(c in text for c in self.CHATTER):
            with self._lock:
                self.retrying += 1
                first = self.retrying == 1
            if first:
                self.logger.info(
                    "the broker's coordinator is still loading (a fresh broker): librdkafka "
                    "retries on its own; its retry lines go to DEBUG"
                )
            level = logging.DEBUG
        self.logger.log(level, "%s", text)


LIBRDKAFKA_LOG = LibrdkafkaLog()
"""The one sink every client of this process logs through."""

RECONNECT_MAX_MS = 1_000
"""``reconnect.backoff.max.ms`` of every client: librdkafka backs off reconnecting to a
broker that went away, doubling up to 10 s by default, so a client could ignore a
restarted broker for up to 10 s after it was back, while leaderships and coordinators
moved to it. In the fault harness's rolling restart of three nodes (2 workers, one run
each, same options) the outputs stopped 17.2 and 25.8 s with librdkafka's default
(batches aborted on message timeouts, stuck send_offsets_to_transaction) and 2.8 s with
1 s, nothing else changed; 3.1 s with the other replication settings too."""

REPLICATED_TRANSACTION_TIMEOUT_MS = 30_000
REPLICATED_SESSION_TIMEOUT_MS = 20_000


def replicated(settings: Settings) -> bool:
    """Is Driftline deployed on a replicated cluster (replication factor 2 or more)?"""
    return settings.replication_factor > 1


def transaction_timeout_ms(settings: Settings) -> int:
    """The worker loops' transaction timeout: ``DRIFTLINE_TRANSACTION_TIMEOUT_MS``, else
    10 s on one broker and 30 s on a replicated cluster. A batch that writes to a
    partition whose leader died waits until the controller fenced that broker (9 s of
    ``broker.session.timeout.ms``, 9-13 s seen) and the new leader is known; librdkafka
    times its records out at the transaction timeout, so at 10 s such batches were
    aborted, and an abort during the failover could itself time out (leader SIGKILL on
    three nodes: 23.4 s to outputs again, one renewed producer; 15.9 s and no batch read
    again at 30 s). A crashed worker's open transaction holds read_committed readers
    back this long unless a worker with its DRIFTLINE_INSTANCE_ID comes back first.

    >>> transaction_timeout_ms(Settings()), transaction_timeout_ms(Settings(replication_factor=3))
    (10000, 30000)
    """
    if settings.transaction_timeout_ms is not None:
        return settings.transaction_timeout_ms
    return REPLICATED_TRANSACTION_TIMEOUT_MS if replicated(settings) else 10_000


SESSION_TIMEOUT_MS = 6_000
"""The worker loops' session on one broker: the broker's smallest
(``group.min.session.timeout.ms``, 6 s by default), heartbeats every second. A SIGKILLed
worker's partitions wait this long for another member, and after a broker hard restart
every member's old identity is waited out this long by the reloaded group coordinator
(librdkafka gives up a session the broker did not answer for, and rejoins under a new
member id). It was 10 s: docs/scaling.md, "Recovery", has the before and after."""


def session_timeout_ms(settings: Settings) -> int:
    """The worker loops' consumer-group session timeout: ``DRIFTLINE_SESSION_TIMEOUT_MS``,
    else 6 s on one broker and 20 s on a replicated cluster. librdkafka gives a
    member's partitions up when the group coordinator has not answered for a session; a
    coordinator on a broker that dies answers again from another broker only after the
    fence (9-13 s seen), so with 10 s every worker lost its partitions and rebalanced on
    such a broker crash (controller SIGKILL on three nodes: 26.2 s to outputs again;
    17.2 s at 20 s). The cost: a SIGKILLed worker's partitions wait 20 s, not 6 s, for
    another worker.

    >>> session_timeout_ms(Settings()), session_timeout_ms(Settings(replication_factor=3))
    (6000, 20000)
    """
    if settings.session_timeout_ms is not None:
        return settings.session_timeout_ms
    return REPLICATED_SESSION_TIMEOUT_MS if replicated(settings) else SESSION_TIMEOUT_MS


def confluent_common(settings: Settings, client_role: str) -> dict[str, Any]:
    """Configuration shared by every librdkafka client: servers, client id, security,
    and the log sink."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"{settings.client_id}-{client_role}",
        "security.protocol": settings.security_protocol,
        "reconnect.backoff.max.ms": RECONNECT_MAX_MS,
        "logger": LIBRDKAFKA_LOG,
    }
    if settings.security_protocol.startswith("SASL"):
        if settings.sasl_mechanism is None or settings.sasl_username is None:
            raise ValueError("SASL needs DRIFTLINE_SASL_MECHANISM and DRIFTLINE_SASL_USERNAME")
        conf["sasl.mechanism"] = settings.sasl_mechanism
        conf["sasl.username"] = settings.sasl_username
        conf["sasl.password"] = settings.sasl_password_value() or ""
    if settings.security_protocol.endswith("SSL"):
        if settings.ssl_cafile is not None:
            conf["ssl.ca.location"] = str(settings.ssl_cafile)
        if settings.ssl_certfile is not None:
            conf["ssl.certificate.location"] = str(settings.ssl_certfile)
        if settings.ssl_keyfile is not None:
            conf["ssl.key.location"] = str(settings.ssl_keyfile)
        if settings.ssl_key_password is not None:
            conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_check_hostname else "none"
        )
    return conf


def producer_config(settings: Settings, role: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent, batching producer with the Java-compatible partitioner, acks from
    every in-sync replica.

    No compression by default: aiokafka (Faust) reads lz4 and zstd only with extra
    libraries installed.
    """
    conf = confluent_common(settings, role)
    conf.update(
        {
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 10,
            "batch.size": 1_000_000,
        }
    )
    conf.update(overrides)
    return conf


def consumer_config(
    settings: Settings, role: str, group_id: str, **overrides: Any
) -> dict[str, Any]:
    """A consumer that commits only what the caller stores (at-least-once building block)."""
    conf = confluent_common(settings, role)
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    conf.update(overrides)
    return conf


def admin_config(settings: Settings) -> dict[str, Any]:
    """AdminClient configuration."""
    return confluent_common(settings, "admin")


def java_properties(settings: Settings) -> dict[str, str]:
    """The same security as Java client properties, for Kafka's own tools
    (``driftline kafka``, a ``--command-config`` file); empty for PLAINTEXT.

    >>> props = java_properties(Settings(security_protocol="SASL_SSL",
    ...     sasl_mechanism="SCRAM-SHA-512", sasl_username="ops", sasl_password="s3cret",
    ...     ssl_cafile="/etc/kafka/ca.pem"))
    >>> for k, v in props.items():
    ...     print(f"{k}={v}")
    security.protocol=SASL_SSL
    sasl.mechanism=SCRAM-SHA-512
    sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
username="ops" password="s3cret";
    ssl.truststore.type=PEM
    ssl.truststore.location=/etc/kafka/ca.pem
    ssl.endpoint.identification.algorithm=https
    """
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    props: dict[str, str] = {"security.protocol": protocol}
    if protocol.startswith("SASL"):
        if settings.sasl_mechanism is None or settings.sasl_username is None:
            raise ValueError("SASL needs DRIFTLINE_SASL_MECHANISM and DRIFTLINE_SASL_USERNAME")
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )

        def quoted(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        user, password = settings.sasl_username, settings.sasl_password_value() or ""
        props["sasl.mechanism"] = settings.sasl_mechanism
        props["sasl.jaas.config"] = (
            f"{module} required username={quoted(user)} password={quoted(password)};"
        )
    if protocol.endswith("SSL"):
        if settings.ssl_cafile is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(settings.ssl_cafile)
        if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.certificate.chain"] = settings.ssl_certfile.read_text()
            props["ssl.keystore.key"] = settings.ssl_keyfile.read_text()
            if settings.ssl_key_password is not None:
                props["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
        props["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_check_hostname else ""
        )
    return props


def properties_text(props: dict[str, str]) -> str:
    r"""``props`` as a Java properties file (backslashes, line breaks and non-Latin-1
    characters escaped as ``java.util.Properties.load`` reads them).

    >>> print(properties_text({"a.b": "x=1\\", "pem": "L1\nL2"}), end="")
    a.b=x=1\\
    pem=L1\nL2
    """

    def escape(text: str) -> str:
        out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return "".join(c if ord(c) < 256 else f"\\u{ord(c):04x}" for c in out)

    return "".join(f"{k}={escape(v)}\n" for k, v in props.items())


def faust_broker_url(settings: Settings) -> str:
    """Faust's broker URL list (``kafka://host:port;kafka://...``)."""
    return ";".join(f"kafka://{hp.strip()}" for hp in settings.bootstrap_servers.split(","))


def faust_credentials(settings: Settings) -> Any:
    """Faust ``broker_credentials`` for the configured security protocol, or None."""
    import faust  # imported here: Faust is heavy and only workers need it

    context: ssl.SSLContext | None = None
    if settings.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH,
            cafile=None if settings.ssl_cafile is None else str(settings.ssl_cafile),
        )
        context.check_hostname = settings.ssl_check_hostname
        if settings.ssl_certfile is not None:
            context.load_cert_chain(
                str(settings.ssl_certfile),
                None if settings.ssl_keyfile is None else str(settings.ssl_keyfile),
                None
                if settings.ssl_key_password is None
                else settings.ssl_key_password.get_secret_value(),
            )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.security_protocol.startswith("SASL"):
        if settings.sasl_mechanism is None or settings.sasl_username is None:
            raise ValueError("SASL needs DRIFTLINE_SASL_MECHANISM and DRIFTLINE_SASL_USERNAME")
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password_value() or "",
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return None
