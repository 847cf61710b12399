"""Prometheus and Alertmanager from the machine's binaries (Debian's ``prometheus`` and
``prometheus-alertmanager``, installed by infra/bootstrap.sh), each on a free 127.0.0.1
port with its data and log in a temporary directory, started and stopped like the
broker; and a webhook receiver that records what Alertmanager notifies."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

from driftline.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "infra" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "infra" / "alertmanager" / "alertmanager.yml"


class Server:
    """A binary serving HTTP on a free port, its output in ``log``."""

    name = "server"

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{self.name}.log"
        self.args: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, exe: str, config: dict[str, Any], storage: str, *extra: str) -> list[str]:
        """The command line of ``exe`` (Prometheus and Alertmanager take the same flags):
        ``config`` written to ``NAME.yml`` in the temporary directory, its data under
        ``data`` there (the flag ``storage``), serving on ``port``, warnings only."""
        (self.tmp / f"{self.name}.yml").write_text(yaml.safe_dump(config))
        return [
            exe,
            f"--config.file={self.tmp / f'{self.name}.yml'}",
            f"{storage}={self.tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *extra,
            "--log.level=warn",
        ]

    def __enter__(self) -> Self:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        self.wait("ready", lambda: self._get("/-/ready") is not None, 60)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return bytes(resp.read())
        except OSError:
            return None

    def get_json(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = self._get(path + query)
        assert body is not None, f"{self.name} did not answer {path}: {self.tail()}"
        return json.loads(body)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            got = check()
            if got:
                return got
            time.sleep(0.5)
        raise AssertionError(f"{self.name}: {what} not seen in {timeout} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Prometheus(Server):
    """``prometheus`` scraping ``target`` (a worker's host:port), evaluating the shipped
    rules plus ``extra_rules``, and sending alerts to ``alertmanagers``."""

    name = "prometheus"

    def __init__(self, tmp: Path, target: str, extra_rules: dict[str, Any] | None = None,
                 alertmanagers: Sequence[str] = ()) -> None:  # fmt: skip
        super().__init__(tmp)
        exe = shutil.which("prometheus")
        assert exe, "prometheus is missing: run infra/bootstrap.sh (Debian package prometheus)"
        rules = [str(p) for p in sorted(RULES_DIR.glob("*.yml"))]
        if extra_rules is not None:
            (tmp / "test_rules.yml").write_text(yaml.safe_dump(extra_rules))
            rules.append(str(tmp / "test_rules.yml"))
        config: dict[str, Any] = {
            # a scrape may not take longer than its interval: 2 s leaves room for a
            # worker sharing two busy cores with the rest of the suite
            "global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                       "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [
                {"job_name": "driftline-worker", "metrics_path": "/metrics",
                 "static_configs": [{"targets": [target]}]}
            ],
        }  # fmt: skip
        if alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": list(alertmanagers)}]}]}  # fmt: skip
        self.args = self.command(exe, config, "--storage.tsdb.path")

    def api(self, path: str, **params: str) -> Any:
        doc = self.get_json(f"/api/v1/{path}", **params)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant vector as {metric labels as text: value}."""
        result = self.api("query", query=expr)["result"]
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


class Alertmanager(Server):
    """``prometheus-alertmanager`` with the shipped configuration, its receivers pointed
    at ``webhook`` (send_resolved) and its timers shortened to seconds: what the test
    checks is the shipped routing (grouping, inhibition), not the waits."""

    name = "alertmanager"

    def __init__(self, tmp: Path, webhook: str) -> None:
        super().__init__(tmp)
        exe = shutil.which("prometheus-alertmanager")
        assert exe, ("prometheus-alertmanager is missing: run infra/bootstrap.sh "
                     "(Debian package prometheus-alertmanager)")  # fmt: skip
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        for receiver in config["receivers"]:
            receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
        config["route"].update(group_wait="1s", group_interval="2s", repeat_interval="1h")
        # no gossip port: one instance
        self.args = self.command(exe, config, "--storage.path", "--cluster.listen-address=")

    def groups(self) -> list[dict[str, Any]]:
        """The alert groups Alertmanager holds (``/api/v2/alerts/groups``)."""
        groups: list[dict[str, Any]] = self.get_json("/api/v2/alerts/groups")
        return groups

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.get_json("/api/v2/alerts", **params)
        return alerts


@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on a free port: (its URL, the notifications it received)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
