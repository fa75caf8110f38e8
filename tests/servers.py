"""Real local servers for the tests: free ports, polling, clean shutdown, and Prometheus."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

# What a server that is still starting answers with: no socket yet, a 503 page that is not
# JSON, or a JSON answer that lacks the part asked for.
NOT_YET = (httpx.HTTPError, ValueError, KeyError, IndexError)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.25,
             proc: subprocess.Popen | None = None, log: Path | None = None,
             tolerate: tuple[type[BaseException], ...] = (httpx.TransportError,)):
    """Poll `check()` until it returns something truthy and return that; errors in `tolerate`
    count as "not yet". Fails at once if `proc` exits; failures show `log`."""
    def failure(message: str) -> AssertionError:
        text = log.read_text(errors="replace") if log is not None and log.exists() else ""
        return AssertionError(f"{message}\n--- {log}\n{text}" if log is not None else message)

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise failure(f"{proc.args[0]} exited {proc.returncode} while waiting for {what}")
        try:
            last = check()
            if last:
                return last
        except tolerate as exc:
            last = exc
        time.sleep(every)
    raise failure(f"timed out waiting for {what} (last: {last!r})")


def launch(cmd: list[str], log: Path, **popen) -> subprocess.Popen:
    """Start `cmd` with stdout and stderr going to `log`."""
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen)


def stop(proc: subprocess.Popen) -> None:
    """Terminate `proc`, killing it if it does not exit within 15 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Prometheus:
    """Debian's prometheus on a local port, scraping given targets every second."""

    url: str
    proc: subprocess.Popen
    log: Path
    config: dict = field(repr=False)

    @classmethod
    def start(cls, work: Path, targets: list[str], rule_files: tuple[Path, ...] = (),
              labels: dict[str, str] | None = None, timeout: float = 60.0) -> Prometheus:
        """Start with a generated config; returns once a target has been scraped."""
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run `make system-deps` (Debian package)"
        work.mkdir(parents=True, exist_ok=True)
        static = {"targets": list(targets), **({"labels": labels} if labels else {})}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "gitops-ml", "static_configs": [static]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = work / "prometheus.log"
        proc = launch([binary, f"--config.file={work / 'prometheus.yml'}",
                       f"--storage.tsdb.path={work / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], log)
        server = cls(f"http://127.0.0.1:{port}", proc, log, config)
        try:
            wait_for("the first successful scrape", lambda: any(
                t["health"] == "up" for t in server.api("targets")["activeTargets"]),
                timeout, proc=proc, log=log, tolerate=NOT_YET)
        except BaseException:
            server.stop()
            raise
        return server

    def api(self, path: str, **params: str) -> Any:
        """The `data` of one answer of the HTTP API (`/api/v1/<path>`)."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", (path, params, answer)
        return answer["data"]

    def query(self, promql: str) -> list[dict]:
        """The result vector of an instant query."""
        return self.api("query", query=promql)["result"]

    def logs(self) -> str:
        """What Prometheus logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the server."""
        stop(self.proc)
