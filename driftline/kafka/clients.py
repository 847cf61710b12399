"""Kafka client set-up in one place: the same settings give confluent-kafka
(librdkafka) and Faust (aiokafka) the same servers, security and partitioner.

librdkafka's default partitioner differs from the Java client's and aiokafka's:
every confluent-kafka producer here uses ``murmur2_random`` so that a key lands on
the partition Faust expects, which the co-partitioned join depends on.

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


def confluent_common(settings: Settings, client_role: str) -> dict[str, Any]:
    """Configuration shared by every librdkafka client: servers, client id, security,
    and the log sink."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"{settings.client_id}-{client_role}",
        "security.protocol": settings.security_protocol,
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
    """An idempotent, batching producer with the Java-compatible partitioner.

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
