"""Exactly-once consume-transform-produce for the worker's confluent-kafka loops.

The scorer and the join each read a batch, produce its results and commit the batch's
input offsets in one Kafka transaction (KIP-98), with the consumer's group metadata
(KIP-447): a worker that lost its partitions, paused or not, can no longer commit, and
consumers with ``isolation.level=read_committed`` (every Driftline consumer, and what
the client library gives applications) never see the records of an aborted batch. A
crash anywhere in a batch therefore means: the batch is read again, and what it
produced the first time is never visible. See docs/architecture.md, Guarantees.

Errors while a transaction is open fall into three kinds (librdkafka's own
classification): retriable (retry the same call, for up to a minute), abortable (abort,
rewind the consumer to the batch's first offsets and process the batch again) and
fatal. A fatal error, or an abort that fails, most often means the coordinator gave
up on the transaction (it outlived ``transaction.timeout.ms`` while the broker was
away or the process was paused) and fenced the producer: the loop then replaces its
producer (same transactional id, so ``init_transactions`` fences any other holder)
and reads the batch again; the local state never saw the batch. Only repeated renewals
(another live process with the same id) end the thread, and so the worker.

``send_offsets_to_transaction`` does not keep its timeout: after a hard broker restart
it blocked every loop of both workers of the fault harness for good (librdkafka 2.16;
its coordinator request is never timed out, librdkafka #5456, and a coordinator
cached from before the restart is waited for forever, #5511). On a cluster the same
happens whenever a group's coordinator moves off a broker that goes away (a SIGKILL, or
a node of a rolling restart): the call waits until that broker is back. The loops
therefore make that call on a helper thread and stop waiting after :data:`STUCK_S`
(doubled for each stuck call in a row, up to :data:`STUCK_MAX_S`): the producer is then
replaced like a fenced one (the new one's ``init_transactions`` fences the stuck one's
transaction, and finds the coordinators afresh), and so is every other lane's, which
would hang the same way on its next batch; the batch is read again.

That wait is shorter, and mostly not needed, when the cause is known. librdkafka #5511:
a call hangs when the group coordinator it cached is a broker that has since left the
cluster's metadata (a SIGKILLed or stopped node, once the controller fenced it): the
client drops that broker's thread, and nothing asks for the coordinator again. So after
any client error (a producer's ``error_cb``: a broker disconnected, refused, all down; or a
transient error of a loop's consumer, :data:`CONSUMER_ALARM`) a loop asks
for the cluster's brokers before each batch for :data:`ALARM_S` (a metadata request at
most every :data:`CHECK_EVERY_S`; none at all while no error was seen) and keeps, per
lane, the brokers its producer may have cached a coordinator on (:class:`BrokerView`).
When one of them left: between batches, no transaction open, that lane's producer is
replaced at once (nothing aborted, nothing read again); in a batch that began before,
its offsets call is waited for :func:`quick_wait_s` only (a multiple of the observed
calls' p99, with a floor) before the stuck path above. The plain :data:`STUCK_S` stays
for a hang with no broker gone (#5456), so a loaded machine whose calls are slow but
whose brokers are all there never replaces a producer for it.

On a replicated cluster (replication factor 2 or more) the timeouts are longer: a
partition whose leader died is writable again only once the controller has fenced that
broker (``broker.session.timeout.ms``, 9 s, seen 9-13 s on 2 cores) and clients learnt
the new leader. A batch's delivery wait (``Transactions.deliver_s``) and the transaction
timeout (:func:`driftline.kafka.clients.transaction_timeout_ms`, which also caps
librdkafka's message timeout) therefore outlast a failover, so such a batch completes
instead of being aborted at 10 s, and the consumer session outlasts a group
coordinator's failover (:func:`group_settings`). docs/scaling.md has the measurements.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as CKafkaError

from driftline.core.errors import KafkaError
from driftline.kafka.clients import producer_config, session_timeout_ms, transaction_timeout_ms
from driftline.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
RETRY_BUDGET_S = 30.0
RENEWALS_PER_MINUTE = 5
INIT_BUDGET_S = 180.0
"""How long ``init_transactions`` (a loop's start, a producer's replacement) is retried
while it fails with a retriable error, mostly a broker that is away. It was
:data:`RETRY_BUDGET_S` (30 s): a broker hard-restarted on a loaded machine (ready after
24-41 s) outlasted it, the join's thread died and the whole worker was restarted (its
imports, Faust's start, the changelog restore) after the broker was back, adding ~15-40 s
to the recovery (the fault harness's quick run, split layout, load ~30). Waiting here
costs nothing: no transaction is open, and the watchdog still restarts a worker whose
broker stays away for minutes."""
STUCK_S = 3.0
"""How long a loop first waits for a ``send_offsets_to_transaction`` before it gives the
producer up (see above). The call takes ~5 ms (p50, docs/benchmarks-history.md: AddOffsetsToTxn
and TxnOffsetCommit); a stuck one returns only when the coordinator's old broker is
back. It was 15 s: in the fault harness on three nodes each move of a group coordinator
then stopped a loop for 15 s (controller SIGKILL: 26.2 s to outputs again, 17.2 s with
3-4 s and the session below). Each stuck call in a row doubles the wait, up to
:data:`STUCK_MAX_S`; a committed batch resets it."""
STUCK_MAX_S = 15.0
"""The longest wait for a ``send_offsets_to_transaction``: while coordinators stay away
(a cluster that lost its quorum), the loop replaces its producers at most this often."""
QUICK_FLOOR_S = 0.5
"""The shortest wait for an offsets call whose producer may hold a coordinator on a broker
that left the cluster (:func:`quick_wait_s`)."""
QUICK_MULTIPLE = 10.0
"""That wait is this many times the p99 of the loop's last :data:`CALL_SAMPLES` offsets
calls that returned (when it is above the floor)."""
CALL_SAMPLES = 256
QUICK_MIN_SAMPLES = 20
"""Fewer observed calls than this: no p99 to size the wait by, :data:`STUCK_S` it is."""
ALARM_S = 60.0
"""How long after a client error a loop looks at the cluster's brokers before its batches."""
CHECK_EVERY_S = 0.25
"""At most one metadata request per this long per loop while alarmed."""

# consume() reports these while a broker is away; librdkafka reconnects on its own
_TRANSIENT = {
    CKafkaError._TRANSPORT,
    CKafkaError._DESTROY_BROKER,  # a broker gone from a cluster's metadata
    CKafkaError._ALL_BROKERS_DOWN,
    CKafkaError._RESOLVE,
    CKafkaError._TIMED_OUT,
    CKafkaError._MSG_TIMED_OUT,
    CKafkaError.REQUEST_TIMED_OUT,
    CKafkaError.NETWORK_EXCEPTION,
    CKafkaError.NOT_COORDINATOR,
    CKafkaError.COORDINATOR_NOT_AVAILABLE,
    CKafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    CKafkaError.NOT_LEADER_FOR_PARTITION,
    CKafkaError.LEADER_NOT_AVAILABLE,
}


class Undelivered(KafkaError):
    """A batch's records were not delivered in time: abort the batch and read it again."""


class Stuck(KafkaError):
    """A librdkafka call did not return long after its own timeout: replace the producer
    and read the batch again."""


_Call = tuple[Callable[[], None], threading.Event, list[BaseException]]


class Helper:
    """A daemon thread that makes calls for another thread, which can stop waiting for
    one that hangs. A helper whose call hung is dropped (its thread stays blocked in
    that call; being a daemon, it does not hold up the process's exit)."""

    def __init__(self, name: str) -> None:
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            call, done, raised = self.calls.get()
            try:
                call()
            except BaseException as exc:  # handed to the waiting thread
                raised.append(exc)
            done.set()

    def call(self, fn: Callable[[], None], timeout_s: float) -> bool:
        """``fn()`` on the helper thread; False if it has not returned in ``timeout_s``.
        What ``fn`` raises is raised here."""
        done, raised = threading.Event(), list[BaseException]()
        self.calls.put((fn, done, raised))
        if not done.wait(timeout_s):
            return False
        if raised:
            raise raised[0]
        return True


def deliver_s(settings: Settings) -> float:
    """How long a loop's batch may take to be delivered: :data:`TIMEOUT_S` on one broker;
    on a replicated cluster, 5 s less than the transaction timeout (25 s), so that a
    batch waiting out a leader's failover completes (docs/scaling.md)."""
    return max(TIMEOUT_S, transaction_timeout_ms(settings) / 1000 - 5.0)


def quick_wait_s(calls: Sequence[float], ceiling_s: float = STUCK_S) -> float:
    """How long to wait for an offsets call whose producer may hold a coordinator on a
    broker that left the cluster: :data:`QUICK_MULTIPLE` times the p99 of the observed
    ``calls`` (seconds of the calls that returned), at least :data:`QUICK_FLOOR_S`, at most
    ``ceiling_s`` (the wait without that suspicion); ``ceiling_s`` while fewer than
    :data:`QUICK_MIN_SAMPLES` calls were seen.

    >>> quick_wait_s([0.005] * 100)  # the usual ~5 ms calls: the floor
    0.5
    >>> quick_wait_s([0.005] * 98 + [0.12, 0.2])  # a loaded machine's slow tail
    1.2
    >>> quick_wait_s([0.005] * 99 + [0.9])  # one slow call in a hundred: above the p99
    0.5
    >>> quick_wait_s([0.005] * 97 + [0.4] * 3)  # ten times it is above the plain wait
    3.0
    >>> quick_wait_s([0.005] * 5)
    3.0
    """
    if len(calls) < QUICK_MIN_SAMPLES:
        return ceiling_s
    ordered = sorted(calls)
    p99 = ordered[max(0, -(-len(ordered) * 99 // 100) - 1)]
    return min(ceiling_s, max(QUICK_FLOOR_S, round(QUICK_MULTIPLE * p99, 3)))


class BrokerView:
    """The brokers a producer may have cached a coordinator on (every broker of the
    cluster seen since it was made), and which of them left the cluster since.

    >>> view = BrokerView({1, 2, 3})
    >>> view.lost({1, 2, 3}), view.lost({1, 3}), view.lost({1, 2, 3, 4}), sorted(view.known)
    (set(), {2}, set(), [1, 2, 3, 4])
    """

    def __init__(self, brokers: set[int]) -> None:
        self.known = set(brokers)

    def lost(self, brokers: set[int]) -> set[int]:
        """The known brokers missing from ``brokers`` (the cluster's now); with none
        missing, ``brokers`` joins the known (a producer may cache a coordinator on a
        broker that joined or came back)."""
        gone = self.known - brokers
        if not gone:
            self.known |= brokers
        return gone


def transactional_id(settings: Settings, group_id: str) -> str:
    """``<group>-<instance>``: stable when ``DRIFTLINE_INSTANCE_ID`` is set, so a restarted
    worker fences its dead predecessor's open transactions at once instead of waiting
    for their timeout; otherwise unique per call (per loop)."""
    return f"{group_id}-{settings.instance_id or uuid.uuid4().hex[:12]}"


def transactional_producer(
    settings: Settings, role: str, txn_id: str, lane: int = 0, **overrides: Any
) -> dict[str, Any]:
    """Producer settings for lane ``lane`` of :class:`Transactions`: transactional id
    ``txn_id`` for lane 0, ``<txn_id>.<lane>`` for the others."""
    return producer_config(
        settings,
        role,
        **{
            "transactional.id": f"{txn_id}.{lane}" if lane else txn_id,
            "transaction.timeout.ms": transaction_timeout_ms(settings),
            "linger.ms": 5,
            **overrides,
        },
    )


CONSUMER_ALARM = [-ALARM_S]
"""When a loop's consumer last reported a transient error (monotonic seconds; :func:`usable`
sets it, every :class:`Transactions` of the process reads it): a producer may never
report the broker that died (librdkafka drops a broker that left the metadata, with no
error, when it had nothing to send there), but the loops' consumers, which fetch from
every broker and talk to their group coordinator, do."""


def usable(msg: Message) -> bool:
    """True for a record; False for a consumer event to skip (end of partition, a broker
    away for a while). Raises for a consumer error that will not go away by itself."""
    err = msg.error()
    if err is None:
        return True
    code = err.code()
    if code == CKafkaError._PARTITION_EOF:
        return False
    if code in _TRANSIENT or (err.retriable() and not err.fatal()):
        log.warning("consumer: %s (transient; librdkafka retries)", err.str())
        CONSUMER_ALARM[0] = time.monotonic()
        return False
    raise KafkaError(f"consume failed: {err.str()}", code=err.name())


def next_offsets(msgs: Sequence[Message]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (first offset, last offset + 1) of the records in ``msgs``."""
    span: dict[tuple[str, int], tuple[int, int]] = {}
    for msg in msgs:
        if msg.error() is not None:
            continue
        tp = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        first = span[tp][0] if tp in span else offset
        span[tp] = (first, offset + 1)
    return span


def loop_consumer_settings(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The consumer settings the scorer and the join share, plus ``extra``: their
    :func:`group_settings`, offsets committed only by the transaction, short fetch
    waits, and a deleted or missing input topic noticed in seconds (not librdkafka's
    default 5 minutes), so that the watchdog can restart the worker."""
    return {
        **group_settings(settings),
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
        "topic.metadata.refresh.interval.ms": 10_000,
        **extra,
    }


def group_settings(settings: Settings) -> dict[str, Any]:
    """Consumer-group settings of the worker's loops: a dead member is noticed in
    :func:`driftline.kafka.clients.session_timeout_ms` (6 s on one broker, 20 s on a
    replicated cluster; librdkafka's default is 45 s). Not static membership
    (``group.instance.id``): in the fault harness, a broker restart made librdkafka's
    static consumers fence each other (FENCED_INSTANCE_ID, fatal) and a worker hung in
    its consumer's close."""
    return {"session.timeout.ms": session_timeout_ms(settings), "heartbeat.interval.ms": 1_000}


def consumer_lag(consumer: Consumer) -> int:
    """Records behind the cached high watermarks of the assigned partitions (local calls
    only: no broker round trip)."""
    lag = 0
    assigned = consumer.assignment()
    for tp in consumer.position(assigned) if assigned else []:
        marks = consumer.get_watermark_offsets(tp, cached=True)
        if marks is None or tp.offset < 0 or marks[1] < 0:
            continue  # nothing fetched yet from this partition
        lag += max(0, marks[1] - tp.offset)
    return lag


LANES = 2
PHASES = ("work", "deliver", "offsets", "commit")
"""The phases of a batch's transaction, as ``driftline_transaction_seconds`` labels them."""


class TxnObserver(Protocol):
    """What :class:`Transactions` reports of each batch; the worker's Prometheus metrics
    (``streams.telemetry.TXN_METRICS``) implement it, so this module imports none."""

    def phase(self, loop: str, phase: str, seconds: float) -> None:
        """One phase (:data:`PHASES`) of a committed batch's transaction took ``seconds``."""

    def retried(self, loop: str, why: str) -> None:
        """A batch's transaction was given up (``aborted``, ``fenced`` or ``stuck``) and
        the batch will be read again."""


class NoObserver:
    """Reports nothing (a loop without metrics: benches, tests)."""

    def phase(self, loop: str, phase: str, seconds: float) -> None:
        pass

    def retried(self, loop: str, why: str) -> None:
        pass


class Transactions:
    """Runs one batch at a time in a transaction that also commits its input offsets.

    Consecutive batches take turns on ``lanes`` transactional producers (each with its
    own transactional id). After a commit the coordinator still writes the
    transaction's markers for a few milliseconds; a producer that begins its next
    transaction meanwhile has its first AddPartitionsToTxn refused with
    CONCURRENT_TRANSACTIONS, which librdkafka retries after a fixed 20 ms. Whether it
    waits is a race with the broker's marker writes, lost more often the busier the
    machine: with one core kept busy, a join-sized batch's transaction took 30 ms (p50)
    with one producer and 10.5 ms with two taking turns (``bench/bench_txn.py``,
    docs/benchmarks-history.md). Batches still run one at a time:
    a batch begins only after the previous one committed (or aborted), so outputs and
    offsets keep their order, and every transaction is fenced by the consumer group's
    generation (KIP-447) whichever lane runs it.

    ``make_producer(lane)`` builds lane ``lane``'s producer; it is called again to
    replace a fenced one. Use :attr:`producer` for every produce of a batch.
    ``deliver_s``: how long a batch's records may take to be written before the batch is
    aborted and read again. ``observer`` gets each committed batch's phases and each batch
    given up (:class:`TxnObserver`).
    """

    def __init__(self, make_producer: Callable[[int], Producer], consumer: Consumer,
                 name: str, lanes: int = LANES, deliver_s: float = TIMEOUT_S,
                 observer: TxnObserver | None = None) -> None:  # fmt: skip
        self.make_producer = make_producer
        self.observer: TxnObserver = observer if observer is not None else NoObserver()
        self.producers = [make_producer(lane) for lane in range(lanes)]
        self.lane = 0
        self.consumer = consumer
        self.name = name
        self.deliver_s = deliver_s
        self.renewed: deque[float] = deque(maxlen=RENEWALS_PER_MINUTE)
        """When a producer was last replaced (monotonic seconds)."""
        self.fenced: deque[float] = deque(maxlen=RENEWALS_PER_MINUTE)
        """When a fenced producer was last replaced (a stuck one does not count)."""
        self.stuck_s = STUCK_S
        """How long the next ``send_offsets_to_transaction`` is waited for."""
        self.helper = Helper(f"{name}-offsets")
        self.calls: deque[float] = deque(maxlen=CALL_SAMPLES)
        """Seconds of the last offsets calls that returned (:func:`quick_wait_s`)."""
        self.alarm_at = -ALARM_S
        """When a producer last reported an error (monotonic seconds)."""
        self.checked_at = -CHECK_EVERY_S
        self.brokers: set[int] = set()
        """The cluster's brokers at the last look."""
        self.views = [BrokerView(set()) for _ in self.producers]
        """Per lane: brokers its producer may hold a coordinator on."""
        self.topic: str | None = None
        """A topic to ask the metadata of (the last batch's input)."""
        self.early = 0
        """Producers replaced between batches because a broker left (nothing read again)."""

    @classmethod
    def for_loop(cls, settings: Settings, role: str, group_id: str, consumer: Consumer,
                 lanes: int = LANES, producer: Any = None,
                 observer: TxnObserver | None = None) -> Transactions:  # fmt: skip
        """The transactions of the loop that consumes with ``consumer`` in ``group_id``:
        lane producers with ids :func:`transactional_id` (``.1`` for the second lane).
        ``producer`` replaces every lane's (tests pass a fake)."""
        txn_id = transactional_id(settings, group_id)
        made: list[Transactions] = []

        def on_error(err: CKafkaError) -> None:
            if made:
                made[0].on_error(err)

        def make(lane: int) -> Producer:
            if producer is not None:
                return cast(Producer, producer)
            return Producer(transactional_producer(settings, role, txn_id, lane, error_cb=on_error))

        made.append(cls(make, consumer, role, lanes, deliver_s(settings), observer))
        return made[0]

    @property
    def producer(self) -> Producer:
        """The producer of the current (or next) batch's transaction."""
        return self.producers[self.lane]

    def produce(self, topic: str, value: bytes | None, key: bytes | None,
                headers: list[tuple[str, bytes]], **kw: Any) -> None:  # fmt: skip
        """Produce one record of the batch; while the local queue is full, let librdkafka
        send and try again."""
        produce: Any = self.producer.produce  # its stub types headers too narrowly
        while True:
            try:
                produce(topic, value, key, headers=headers, **kw)
                return
            except BufferError:
                self.producer.poll(0.05)

    def init(self) -> None:
        """Register the transactional ids (fences older producers that had them)."""
        for producer in self.producers:
            self._retry(lambda p=producer: p.init_transactions(TIMEOUT_S), INIT_BUDGET_S)  # type: ignore[misc]
        self._look()  # the brokers the producers start with
        self.views = [BrokerView(self.brokers) for _ in self.producers]

    def on_error(self, err: CKafkaError) -> None:
        """A producer's ``error_cb`` (served while it polls or flushes): logged, as
        librdkafka logs an error with no callback set, and the loop looks at the
        cluster's brokers for the next :data:`ALARM_S`."""
        log.warning("%s: librdkafka: %s", self.name, err.str())
        self.alarm_at = time.monotonic()

    def _look(self) -> None:
        """The cluster's brokers now (:attr:`brokers`), from a metadata request; left as
        they were when there is no answer (librdkafka retries the rest)."""
        self.checked_at = time.monotonic()
        try:
            self.brokers = set(self.producer.list_topics(self.topic, timeout=1.0).brokers)
        except Exception as exc:  # no answer is no news
            log.info("%s: no cluster metadata (%s)", self.name, exc)

    def _lost(self, lane: int) -> set[int]:
        """Brokers lane ``lane``'s producer may hold a coordinator on that left the cluster:
        from a metadata request when alarmed and due, else from the last look (no request
        at all while no client reported an error for :data:`ALARM_S`)."""
        now = time.monotonic()
        alarm_at = max(self.alarm_at, CONSUMER_ALARM[0])
        if now - alarm_at < ALARM_S and now - self.checked_at >= CHECK_EVERY_S:
            self._look()
        if not self.brokers:
            return set()
        return self.views[lane].lost(self.brokers)

    def _renew_early(self) -> None:
        """Between batches: replace this lane's producer if a broker it may hold a
        coordinator on left the cluster (librdkafka #5511); no transaction is open, so
        nothing is aborted and nothing read again."""
        gone = self._lost(self.lane)
        if gone:
            self.early += 1
            self._renew(f"broker {sorted(gone)} left the cluster", fenced=False,
                        then="before its batch, nothing to read again")  # fmt: skip

    def run(self, msgs: Sequence[Message], produce_batch: Callable[[], None]) -> bool:
        """``produce_batch()`` produces the batch's output inside a transaction that
        commits the offsets after ``msgs``. True once committed; False when the
        transaction was aborted and the consumer rewound to the batch's start (the
        caller discards whatever it prepared and reads the batch again)."""
        span = next_offsets(msgs)
        offsets = [TopicPartition(t, p, end) for (t, p), (_, end) in span.items()]
        offsets = offsets or self.fence_offsets()
        if offsets:
            self.topic = offsets[0].topic
        self._renew_early()
        try:
            t0 = time.perf_counter()
            self.producer.begin_transaction()
            produce_batch()
            t1 = time.perf_counter()
            self.deliver()
            t2 = time.perf_counter()
            if offsets:
                wait_s = (
                    quick_wait_s(self.calls, self.stuck_s)
                    if self._lost(self.lane)
                    else self.stuck_s
                )
                self._retry(lambda: self._send_offsets(offsets, wait_s))
            t3 = time.perf_counter()
            self._retry(lambda: self.producer.commit_transaction(TIMEOUT_S))
            if msgs:
                self._observe(t0, t1, t2, t3, time.perf_counter())
            self.stuck_s = STUCK_S
            return True
        except Stuck as exc:
            self.stuck_s = min(self.stuck_s * 2, STUCK_MAX_S)
            self._renew(str(exc), every_lane=True, fenced=False)
            why = "stuck"
        except (KafkaException, Undelivered) as exc:
            why = self._abort(exc)
        finally:
            self.lane = (self.lane + 1) % len(self.producers)
        self.observer.retried(self.name, why)
        for (t, p), (first, _) in span.items():
            try:
                self.consumer.seek(TopicPartition(t, p, first))
            except KafkaException:  # no longer ours: the rebalance under way moves it
                log.info("%s: %s[%d] not rewound: no longer assigned", self.name, t, p)
        return False

    def _send_offsets(self, offsets: list[TopicPartition], wait_s: float) -> None:
        """The batch's offsets into its transaction, waiting ``wait_s`` at most (the
        call's own timeout is shorter, for a librdkafka that keeps it)."""
        producer, meta = self.producer, self.consumer.consumer_group_metadata()
        own_s = max(wait_s - 1.0, wait_s / 2)
        call = lambda: producer.send_offsets_to_transaction(offsets, meta, own_s)  # noqa: E731
        t0 = time.perf_counter()
        if not self.helper.call(call, wait_s):
            self.helper = Helper(f"{self.name}-offsets")
            raise Stuck(f"{self.name}: send_offsets_to_transaction did not return in "
                        f"{wait_s:.1f} s (its timeout is {own_s:.1f} s)")  # fmt: skip
        self.calls.append(time.perf_counter() - t0)

    def deliver(self) -> None:
        """Wait until the batch's records are written (serving their delivery
        callbacks); the commit would wait for them anyway, this makes it a phase of its
        own. Records left undelivered abort the batch, which is read again."""
        left = self.producer.flush(self.deliver_s)
        if left:
            raise Undelivered(
                f"{self.name}: {left} records not delivered in {self.deliver_s:.0f} s"
            )

    def _observe(self, *marks: float) -> None:
        """One batch's phases, from their start times, to the observer."""
        for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
            self.observer.phase(self.name, phase, end - start)

    def fence_offsets(self) -> list[TopicPartition]:
        """The consumer's current positions, to commit (unchanged) with a transaction
        that consumed nothing, such as the join's expiry sweep: the offsets carry the
        group generation, so a worker that lost its partitions while paused cannot
        commit a sweep of them (the new owner sweeps them). Empty before the first fetch:
        such a transaction would not be fenced, so the caller must not run it."""
        assigned = self.consumer.assignment()
        if not assigned:
            return []
        return [tp for tp in self.consumer.position(assigned) if tp.offset >= 0]

    def _abort(self, exc: Exception) -> str:
        """Abort the batch's transaction, or replace a producer that cannot: returns
        "aborted" or "fenced"."""
        err = exc.args[0] if isinstance(exc, KafkaException) else None
        what = err.str() if err is not None else str(exc)
        if err is not None and err.fatal():
            self._renew(what)
            return "fenced"
        log.warning("%s: aborting the batch's transaction (%s); reading it again",
                    self.name, what)  # fmt: skip
        try:
            self._retry(lambda: self.producer.abort_transaction(TIMEOUT_S))
        except KafkaException as abort_exc:
            self._renew(f"{what}; abort failed: {abort_exc.args[0].str()}")
            return "fenced"
        return "aborted"

    def _renew(self, why: str, every_lane: bool = False, fenced: bool = True,
               then: str = "reading the batch again") -> None:  # fmt: skip
        """Replace a fenced or broken producer (with ``every_lane``, every lane's: a
        stuck producer's lanes share its stale view of the coordinators); too many
        fenced renewals end the thread (stuck ones are paced by :attr:`stuck_s`).
        ``then`` says in the log line what the loop does next."""
        now = time.monotonic()
        if fenced:
            if len(self.fenced) == RENEWALS_PER_MINUTE and now - self.fenced[0] < 60:
                raise KafkaError(
                    f"{self.name}: producer fenced {RENEWALS_PER_MINUTE} times in a "
                    f"minute (another live worker with the same instance id?): {why}"
                )
            self.fenced.append(now)
        self.renewed.append(now)
        log.warning("%s: replacing the transactional producer%s (%s); %s",
                    self.name, "s of every lane" if every_lane else "", why, then)  # fmt: skip
        for lane in range(len(self.producers)) if every_lane else [self.lane]:
            with contextlib.suppress(Exception):  # a broken producer may refuse; dropped anyway
                self.producers[lane].purge(in_queue=True, in_flight=True)
            self.producers[lane] = producer = self.make_producer(lane)
            self.views[lane] = BrokerView(self.brokers)
            self._retry(lambda p=producer: p.init_transactions(TIMEOUT_S), INIT_BUDGET_S)  # type: ignore[misc]

    def _retry(self, call: Callable[[], None], budget_s: float = RETRY_BUDGET_S) -> None:
        """``call()``, again while it fails with a retriable error, for up to ``budget_s``."""
        deadline = time.monotonic() + budget_s
        delay = 0.1
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or time.monotonic() + delay > deadline:
                    raise
                log.info("%s: retrying after a retriable error: %s", self.name, err.str())
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
