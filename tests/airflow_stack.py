"""Airflow as it really runs: a throwaway PostgreSQL, then Airflow's api-server, scheduler and
dag-processor with LocalExecutor, as plain background processes of this test session.

Everything started here is stopped by `AirflowStack.stop()` (process groups by PID, then the
PostgreSQL cluster), which the test fixture calls also when a test fails. Recipe measured on
these machines: /work/shared/NOTES.md, "Airflow under its real scheduler".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nothing listens on now: a fixed default (54350) collided on a shared
    machine, and PostgreSQL then refused to start with only an exit code to show."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return found[-1] if found else None


class AirflowStack:
    """One PostgreSQL cluster (databases `airflow` and `insiders_sql`) and Airflow 3 on it."""

    def __init__(self, root: Path, pg_port: int, api_port: int, insiders_env: Mapping[str, str]):
        self.root = root
        self.pg_port = pg_port
        self.api_port = api_port
        self.pgdata = root / "pg" / "data"
        self.sock = root / "pg" / "sock"
        self.airflow_home = root / "airflow"
        self.logs = root / "logs"
        self.procs: dict[str, subprocess.Popen] = {}
        self.pg_started = False
        base = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}"
        self.meta_url = f"{base}/airflow"
        self.sql_store_url = f"{base}/insiders_sql"
        self.admin_url = f"{base}/postgres"
        api = f"http://127.0.0.1:{api_port}"
        empty_plugins = root / "airflow-plugins"  # the package is installed; no loose imports
        self.env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW", "INSIDERS_"))},
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty_plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.meta_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.meta_url.replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": "insiders-scheduler-test-secret-0123456789",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "PYTHONPATH": str(ROOT / "plugins"),
            **insiders_env,
        }
        empty_plugins.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ PostgreSQL

    def _pg(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(pg_bin() / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and the server refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode:  # say why: the server's own log holds the reason pg_ctl hides
            log = self.pgdata / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-1000:]}\n{tail}")
        return done

    def start_postgres(self) -> None:
        self.pgdata.mkdir(parents=True)
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root / "pg", "postgres", "postgres")
            for path in (self.pgdata, self.sock):
                shutil.chown(path, "postgres", "postgres")
            os.chmod(self.root, 0o755)
        self._pg("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E",
                 "UTF8", "--locale=C.UTF-8")
        self._pg("pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"), "-w",
                 "-t", "60", "-o", f"-p {self.pg_port} -k {self.sock} "
                 "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
        self.pg_started = True
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE airflow"))
            conn.execute(sa.text("CREATE DATABASE insiders_sql"))
        admin.dispose()

    def sql_store_down(self, down: bool) -> None:
        """Take the SQL store away (no new connection is accepted; open ones are cut) or back."""
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"ALTER DATABASE insiders_sql WITH ALLOW_CONNECTIONS "
                                 f"{'false' if down else 'true'}"))
            if down:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = 'insiders_sql'"))
        admin.dispose()

    # ------------------------------------------------------------------ Airflow

    def airflow(self, *args: str, timeout: int = 300, check: bool = True
                ) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def start_airflow(self) -> None:
        self.airflow("db", "migrate", timeout=600)
        for name in ("api-server", "scheduler", "dag-processor"):
            log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                [str(BIN / "airflow"), name], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.wait_for(self._api_healthy, 180, "the api-server to answer")

    def _api_healthy(self) -> bool:
        self.check_alive()
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"airflow {name} exited {proc.returncode}:\n{tail}")

    def wait_for(self, condition, timeout: float, what: str, every: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def query(self, sql: str, **params: object) -> list[dict]:
        """Read Airflow's metadata database (the test's view of what the scheduler did)."""
        engine = sa.create_engine(self.meta_url)
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int) -> list[dict]:
        path = (self.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                / f"task_id={task_id}" / f"attempt={attempt}.log")
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"event": line})
        return lines

    # ------------------------------------------------------------------ stopping

    def stop(self) -> None:
        """Stop every process this stack started, by PID (their whole process groups)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # task processes of LocalExecutor live in the same group: leave none behind
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if self.pg_started:
            self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
            self.pg_started = False
