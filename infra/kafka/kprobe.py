#!/usr/bin/env python3
"""Small helpers for broker.sh, standard library only.

  kprobe.py free-port [N]        print N (default 1) distinct free TCP ports on 127.0.0.1
  kprobe.py port-free PORT       exit 0 if PORT can be bound on 127.0.0.1, 1 if not
  kprobe.py cluster-id           print a random Kafka cluster id (base64url of 16 bytes)
  kprobe.py probe PORT [TLSDIR]  exit 0 if the broker at 127.0.0.1:PORT answers a Metadata request
  kprobe.py wait PORT PID SECS [TLSDIR]
                                 wait until probe succeeds; exit 1 on timeout, 2 if PID died
  kprobe.py quorum PORT...       print the KRaft quorum as one line, "leader=ID epoch=E
                                 voters=ID,ID,...", asked of the first broker (of
                                 127.0.0.1:PORT...) that answers; exit 1 if none does

With TLSDIR (what certs.sh made: ca.pem, broker.pem, broker.key) the request goes
over TLS, verifying the broker against ca.pem and presenting the broker's own
certificate as the client certificate: that is how broker.sh probes the INTERNAL
listener of a secured broker (up --security), where only that certificate gets in.

The quorum question is a DescribeQuorum v0 request (KIP-595) for partition 0 of
``__cluster_metadata``, which a broker forwards to the active controller: its answer
names the active controller (the quorum leader) of a cluster of several nodes, which
a Metadata reply does not (a KRaft broker reports a random live broker there, KIP-590).

The readiness probe speaks the Kafka protocol directly: one Metadata v4 request
(all topics, no auto-creation), which Kafka 3.x and 4.x both serve (KIP-896
removed only v0-v3). A reply that lists a broker on PORT means the broker has
registered with the controller, caught up on metadata and opened its request
handlers, which is what clients need. It costs about a millisecond, where
starting a JVM for kafka-broker-api-versions costs seconds on 2 cores.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import sys
import time
import uuid
from typing import Any

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    # SO_REUSEADDR as the JVM sets it, so a port in TIME_WAIT counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def cluster_id() -> str:
    # Same form as org.apache.kafka.common.Uuid.randomUuid().toString(), which
    # also never hands out an id that starts with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def tls_context(tls_dir: str) -> ssl.SSLContext:
    """A client context that trusts TLSDIR/ca.pem and presents the broker's certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.pem"))
    ctx.load_cert_chain(os.path.join(tls_dir, "broker.pem"), os.path.join(tls_dir, "broker.key"))
    return ctx


def metadata_brokers(
    port: int, timeout: float = 2.0, tls: ssl.SSLContext | None = None
) -> list[tuple[int, str, int]]:
    """Send Metadata v4 to 127.0.0.1:port and return the (id, host, port) of its brokers."""
    client_id = b"driftline-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">ib", -1, 0)  # topics: null (all), allow_auto_topic_creation: false
    req = header + body
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        s = raw if tls is None else tls.wrap_socket(raw, server_hostname=HOST)
        try:
            s.sendall(struct.pack(">i", len(req)) + req)
            (size,) = struct.unpack(">i", _recv_exact(s, 4))
            resp = _recv_exact(s, size)
        finally:
            if s is not raw:
                s.close()
    pos = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        vals = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return vals

    def take_str() -> str | None:
        nonlocal pos
        (n,) = take(">h")
        if n < 0:
            return None
        s = resp[pos : pos + n].decode()
        pos += n
        return s

    corr, _throttle, count = take(">iii")
    if corr != 1:
        raise ValueError(f"unexpected correlation id {corr}")
    brokers = []
    for _ in range(max(count, 0)):
        (node,) = take(">i")
        host = take_str() or ""
        (bport,) = take(">i")
        take_str()  # rack
        brokers.append((node, host, bport))
    return brokers


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n == 0:
            return out + bytes([b])
        out += bytes([b | 0x80])


def _request(
    port: int, api: int, version: int, body: bytes, flexible: bool, timeout: float = 2.0
) -> bytes:
    """One request to 127.0.0.1:port; returns the response body after the header."""
    client_id = b"driftline-probe"
    header = struct.pack(">hhih", api, version, 1, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # request header v2: no tagged fields
    req = header + body
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(req)) + req)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        resp = _recv_exact(s, size)
    (corr,) = struct.unpack_from(">i", resp, 0)
    if corr != 1:
        raise ValueError(f"unexpected correlation id {corr}")
    # response header v1 (flexible): correlation id, then tagged fields (none expected)
    return resp[5:] if flexible else resp[4:]


def quorum(port: int) -> tuple[int, int, list[int]]:
    """(leader id, leader epoch, voter ids) of the KRaft quorum, from a DescribeQuorum v0
    request to the broker at 127.0.0.1:port (forwarded to the active controller)."""
    name = b"__cluster_metadata"
    body = (
        _uvarint(2)
        + _uvarint(len(name) + 1)
        + name  # topics: 1, its name
        + _uvarint(2)
        + struct.pack(">i", 0)
        + b"\x00"  # partitions: [0], no tags
        + b"\x00"
        + b"\x00"
    )  # topic's tags, request's tags
    resp = _request(port, 55, 0, body, flexible=True)
    pos = 0

    def uvarint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            b = resp[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        vals = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return vals

    (error,) = take(">h")
    if error:
        raise ValueError(f"DescribeQuorum error {error}")
    uvarint()  # topics (one)
    length = uvarint()  # topic name (compact string)
    pos += length - 1
    uvarint()  # partitions (one)
    _part, error, leader, epoch, _hw = take(">ihiiq")
    if error:
        raise ValueError(f"DescribeQuorum partition error {error}")
    voters = []
    for _ in range(uvarint() - 1):
        (replica, _leo) = take(">iq")
        uvarint()  # tagged fields of the replica state
        voters.append(replica)
    return leader, epoch, sorted(voters)


def probe(port: int, tls: ssl.SSLContext | None = None) -> bool:
    # ssl.SSLError is an OSError.
    try:
        return any(p == port for _, _, p in metadata_brokers(port, tls=tls))
    except (OSError, ValueError, struct.error):
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait(port: int, pid: int, secs: float, tls: ssl.SSLContext | None = None) -> int:
    deadline = time.monotonic() + secs
    while True:
        if probe(port, tls):
            return 0
        if not alive(pid):
            return 2
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    if cmd == "free-port":
        print("\n".join(map(str, free_ports(int(args[0]) if args else 1))))
        return 0
    if cmd == "port-free":
        return 0 if port_free(int(args[0])) else 1
    if cmd == "cluster-id":
        print(cluster_id())
        return 0
    if cmd == "probe":
        tls = tls_context(args[1]) if len(args) > 1 else None
        return 0 if probe(int(args[0]), tls) else 1
    if cmd == "wait":
        tls = tls_context(args[3]) if len(args) > 3 else None
        return wait(int(args[0]), int(args[1]), float(args[2]), tls)
    if cmd == "quorum":
        for port in args:
            try:
                leader, epoch, voters = quorum(int(port))
            except (OSError, ValueError, struct.error, IndexError):
                continue
            print(f"leader={leader} epoch={epoch} voters={','.join(map(str, voters))}")
            return 0
        return 1
    print(f"kprobe.py: unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
