"""ACLs as code: what each Driftline principal may do on a secured cluster, and
applying that to the cluster (idempotently, as an admin).

Four principals (SCRAM users on ``infra/kafka/broker.sh up --security``):

* ``scorer``, the worker (``driftline worker``): reads features, predictions,
  labels and the registry; writes predictions, predictions.shadow, outcomes,
  deadletter, metrics, alerts and retrain; owns its Faust app's internal topics,
  consumer groups and transactional ids. It may not write the registry.
* ``trainer``: reads retrain, outcomes and the registry; writes the registry and
  alerts. It may not write predictions.
* ``app``, an upstream application: writes features and labels; reads
  predictions, alerts and retrain; nothing else.
* ``admin``: a super user (``super.users`` in the broker config), no ACLs here.

Driftline's own topics get LITERAL patterns on their exact names: a prefixed
pattern on ``driftline.predictions`` would also match ``driftline.predictions.shadow``.
PREFIXED patterns cover what varies: the worker's Faust app id (``driftline-worker``
for topic prefix ``driftline.`` and ``--name worker``; worker names must start with
``worker``) and the consumer groups of each principal.

>>> from driftline.settings import Settings
>>> g = declare(Settings(topic_prefix="driftline.", client_id="driftline"))
>>> ("User:trainer", "topic", "driftline.predictions", "literal", "WRITE") in g
False
>>> ("User:trainer", "topic", "driftline.registry", "literal", "WRITE") in g
True
>>> ("User:scorer", "group", "driftline-worker", "prefixed", "READ") in g
True
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from driftline.core.errors import KafkaError
from driftline.kafka.clients import admin_config
from driftline.settings import Settings

TIMEOUT_S = 30.0

READ = ("READ", "DESCRIBE")
WRITE = ("WRITE", "DESCRIBE")
GROUP = ("READ", "DESCRIBE")


class Grant(NamedTuple):
    """One ALLOW ACL: ``principal`` may do ``operation`` on a resource, from any host."""

    principal: str  # "User:scorer"
    resource: str  # topic, group, transactional_id, cluster
    name: str
    pattern: str  # literal or prefixed
    operation: str  # READ, WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS, ...


@dataclass(frozen=True)
class Principals:
    """The SCRAM user names of Driftline's roles, and the consumer-group prefix of the
    upstream app (its subscribers' groups are ``{app}-{topic}`` by default)."""

    scorer: str = "scorer"
    trainer: str = "trainer"
    app: str = "app"
    app_group_prefix: str | None = None  # default: the app's user name


def worker_prefix(settings: Settings, name: str = "worker") -> str:
    """The Faust app id of ``driftline worker --name NAME`` (as streams/app.py builds it):
    the prefix of the worker's group, its scorer's group, internal topics and
    transactional ids."""
    return settings.group(name)


def declare(
    settings: Settings, names: Principals | None = None, worker_name_prefix: str = "worker"
) -> list[Grant]:
    """Every ACL the Driftline principals need under ``settings`` (topic prefix, client id)."""
    names = names or Principals()
    t = settings.topic
    grants: list[Grant] = []

    def topics(user: str, ops: Sequence[str], *suffixes: str) -> None:
        for s in suffixes:
            for op in ops:
                grants.append(Grant(f"User:{user}", "topic", t(s), "literal", op))

    def prefixed(user: str, resource: str, name: str, ops: Sequence[str]) -> None:
        for op in ops:
            grants.append(Grant(f"User:{user}", resource, name, "prefixed", op))

    # scorer: the worker process (scorer loop, registry follower, join, monitor)
    sc = names.scorer
    wp = worker_prefix(settings, worker_name_prefix)
    topics(sc, READ, "features", "predictions", "labels", "registry")
    topics(sc, WRITE, "predictions", "predictions.shadow", "outcomes", "deadletter",
           "metrics", "alerts", "retrain")  # fmt: skip
    # Faust's internal topics (table changelogs, the assignor's leader topic), created
    # by the worker itself; its consumer groups; transactional ids for exactly_once.
    prefixed(sc, "topic", wp, ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"))
    prefixed(sc, "group", wp, GROUP)
    prefixed(sc, "transactional_id", wp, ("WRITE", "DESCRIBE"))
    prefixed(sc, "group", settings.group("registry"), GROUP)

    # trainer: the retrain consumer group, registry and outcome readers (assign only)
    tr = names.trainer
    topics(tr, READ, "retrain", "outcomes", "registry")
    topics(tr, WRITE, "registry", "alerts")
    for role in ("trainer", "registry", "outcomes"):
        prefixed(tr, "group", settings.group(role), GROUP)

    # app: an upstream application (driftline.client or any Kafka client)
    ap = names.app
    topics(ap, WRITE, "features", "labels")
    topics(ap, READ, "predictions", "alerts", "retrain")
    prefixed(ap, "group", names.app_group_prefix or ap, GROUP)
    return sorted(set(grants))


_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}


def binding(g: Grant) -> AclBinding:
    """The confluent-kafka AclBinding of a grant."""
    name = "kafka-cluster" if g.resource == "cluster" else g.name
    return AclBinding(_RESOURCE[g.resource], name, _PATTERN[g.pattern], g.principal, "*",
                      AclOperation[g.operation], AclPermissionType.ALLOW)  # fmt: skip


def _grant(b: AclBinding) -> Grant | None:
    resources: dict[object, str] = {v: k for k, v in _RESOURCE.items()}
    patterns: dict[object, str] = {v: k for k, v in _PATTERN.items()}
    resource = resources.get(b.restype)
    pattern = patterns.get(b.resource_pattern_type)
    if resource is None or pattern is None or b.permission_type != AclPermissionType.ALLOW:
        return None
    op = b.operation
    return Grant(b.principal, resource, b.name, pattern,
                 op.name if isinstance(op, AclOperation) else str(op))  # fmt: skip


def _filter(g: Grant) -> AclBindingFilter:
    b = binding(g)
    return AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                            b.operation, b.permission_type)  # fmt: skip


def _wrap(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if err is None or not hasattr(err, "name"):
        return KafkaError(f"{what}: {exc}")
    return KafkaError(f"{what}: {err.str()}", code=err.name())


def current(admin: AdminClient, principals: Iterable[str]) -> set[Grant]:
    """The ALLOW ACLs the cluster holds for ``principals`` (``User:NAME``)."""
    found: set[Grant] = set()
    for p in sorted(set(principals)):
        # None matches any name and host (the stubs only say str).
        flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, p, None,  # type: ignore[arg-type]
                               AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
        try:
            result = admin.describe_acls(flt, request_timeout=TIMEOUT_S).result(TIMEOUT_S)
        except KafkaException as exc:
            raise _wrap(exc, f"cannot describe the ACLs of {p}") from exc
        found.update(g for g in map(_grant, result) if g is not None)
    return found


@dataclass(frozen=True)
class AclResult:
    """What :func:`apply` did."""

    created: list[Grant]
    deleted: list[Grant]
    unchanged: int


def apply(
    settings: Settings,
    grants: Sequence[Grant] | None = None,
    admin: AdminClient | None = None,
    prune: bool = False,
) -> AclResult:
    """Create the missing ``grants`` (default: :func:`declare` of ``settings``); with
    ``prune``, also delete the other ALLOW ACLs of the same principals. Needs a
    principal allowed to alter ACLs (the admin super user). Idempotent; returns once
    the broker enforces the result."""
    admin = admin or AdminClient(admin_config(settings))
    wanted = set(grants if grants is not None else declare(settings))
    have = current(admin, {g.principal for g in wanted})
    missing = sorted(wanted - have)
    if missing:
        for b, fut in admin.create_acls([binding(g) for g in missing],
                                        request_timeout=TIMEOUT_S).items():  # fmt: skip
            try:
                fut.result(TIMEOUT_S)
            except KafkaException as exc:
                raise _wrap(exc, f"cannot create ACL {b}") from exc
    extra = sorted(have - wanted) if prune else []
    if extra:
        filters = [_filter(g) for g in extra]
        for f, fut in admin.delete_acls(filters, request_timeout=TIMEOUT_S).items():
            try:
                fut.result(TIMEOUT_S)
            except KafkaException as exc:
                raise _wrap(exc, f"cannot delete ACL {f}") from exc
    # The broker serves ACLs (and authorizes with them) from its copy of the cluster
    # metadata, a moment behind the controller: wait until it shows them all.
    deadline = time.monotonic() + TIMEOUT_S
    while missing or extra:
        now = current(admin, {g.principal for g in wanted})
        if wanted <= now and not (now & set(extra)):
            break
        if time.monotonic() > deadline:
            raise KafkaError(f"ACLs not in force after {TIMEOUT_S:.0f} s: {sorted(wanted - now)}")
        time.sleep(0.1)
    return AclResult(missing, extra, len(wanted & have))


def table(grants: Iterable[Grant]) -> list[tuple[str, str, str]]:
    """(principal, operations, resource) rows, one per principal and resource, for
    documentation and ``--dry-run`` output."""
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    for g in grants:
        rows.setdefault((g.principal, g.resource, g.pattern, g.name), []).append(g.operation)
    return [
        (p, ",".join(sorted(ops)), f"{res} {name}{'*' if pat == 'prefixed' else ''}")
        for (p, res, pat, name), ops in sorted(rows.items())
    ]
