"""A single-node Apache Kafka broker in KRaft mode on loopback, from the jars ``make jars`` copies
into ``jars/kafka/`` (infra/jvm/kafka/pom.xml) and the configuration in ``infra/kafka/``.

For the tests (a session fixture) and ``make kafka``; a pipeline run only connects to the bootstrap
servers its config names. One process is controller and broker; its data, rendered configuration and
log (``server.log``) live in one folder, formatted on first start.
"""
from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from customer360.errors import C360Error
from customer360.services import HOST, free_port

CHECKOUT = Path(__file__).resolve().parents[3]
#: the broker's jars (``make jars``) and configuration templates (in the repository)
BROKER_JARS = CHECKOUT / "jars" / "kafka"
CONFIG_DIR = CHECKOUT / "infra" / "kafka"


class KafkaBrokerError(C360Error):
    """The loopback broker could not be set up or did not come up."""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as ``kafka-storage random-uuid``)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaBroker:
    """``start()`` formats ``data_dir`` (first time only), starts the broker and waits until its
    listener accepts connections; ``stop()`` ends it. Ports 0: free ones are picked."""

    data_dir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "384m"
    jars: Path = BROKER_JARS
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _java(self, main: str, *args: str) -> list[str]:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(f"no Kafka broker jars in {self.jars}: run `make jars` (infra/jvm/kafka/pom.xml)")
        return [
            "java", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={CONFIG_DIR / 'log4j2.properties'}", f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", f"{self.jars}/*", main, *args,
        ]

    def _render_config(self) -> Path:
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        template = Template((CONFIG_DIR / "server.properties").read_text())
        text = template.substitute(port=self.port, controller_port=self.controller_port, data_dir=self.data_dir / "data")
        path = self.data_dir / "server.properties"
        path.write_text(text)
        return path

    def start(self, *, timeout_s: float = 90.0) -> KafkaBroker:
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._render_config()
        if not (self.data_dir / "data" / "meta.properties").exists():
            formatted = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "--cluster-id", cluster_id(), "--config", str(config)),
                capture_output=True, text=True, timeout=120,
            )
            if formatted.returncode != 0:
                raise KafkaBrokerError(f"formatting {self.data_dir} failed: {(formatted.stderr or formatted.stdout).strip()[-800:]}")
        busy = [p for p in (self.port, self.controller_port) if _listening(p)]
        if busy:  # another process (an earlier broker?) would answer in this one's place
            raise KafkaBrokerError(f"port(s) {busy} on {HOST} are in use; stop what listens there or pick another port")
        with open(self.data_dir / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:  # whatever stops the wait (an error, Ctrl-C) stops the broker too
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise KafkaBrokerError(f"the broker exited with {self.process.returncode}: {self._tail()}")
                if _listening(self.port):
                    return self
                time.sleep(0.2)
            raise KafkaBrokerError(f"the broker did not listen on {self.bootstrap_servers} within {timeout_s:g} s: {self._tail()}")
        except BaseException:
            self.stop()
            raise

    def _tail(self) -> str:
        lines = []
        for name in ("stdout.log", "server.log"):
            path = self.data_dir / name
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(lines) or "(no log)"

    def stop(self, *, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # a controlled shutdown
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
