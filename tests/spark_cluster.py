"""A Spark standalone cluster on 127.0.0.1 (one master, one worker), from pyspark's own jars.

Used by ``.ci/run`` (``python tests/spark_cluster.py start DIR`` prints the master URL;
``... stop DIR``) and by the ``spark_master`` fixture in tests/executors/test_spark.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spark_env() -> dict[str, str]:
    from pyspark.find_spark_home import _find_spark_home

    return {
        **os.environ,
        "SPARK_HOME": _find_spark_home(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_NO_DAEMONIZE": "1",
    }


def _launch(folder: Path, name: str, args: list[str], env: dict[str, str]) -> int:
    spark_class = Path(env["SPARK_HOME"]) / "bin" / "spark-class"
    log = (folder / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [str(spark_class), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # stop() kills the whole group (the JVM and its children)
    )
    (folder / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _wait_for(folder: Path, name: str, text: str, limit: float) -> None:
    log, deadline = folder / f"{name}.log", time.time() + limit
    while text not in log.read_text(errors="replace"):
        if time.time() > deadline:
            raise RuntimeError(f"spark {name} did not start in {limit:g}s; see {log}")
        time.sleep(0.5)


def start(folder: Path, *, cores: int = 2, limit: float = 300.0) -> str:
    """Start a master and a worker (its work dir under ``folder``); returns the master URL."""
    folder.mkdir(parents=True, exist_ok=True)
    env = _spark_env()
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    try:
        _launch(folder, "master", ["org.apache.spark.deploy.master.Master", "--host",
                                   "127.0.0.1", "--port", str(port), "--webui-port",
                                   str(_free_port())], env)  # fmt: skip
        _wait_for(folder, "master", "I have been elected leader", limit)
        _launch(folder, "worker", ["org.apache.spark.deploy.worker.Worker", master, "--host",
                                   "127.0.0.1", "--cores", str(cores), "--memory", "2g",
                                   "--work-dir", str(folder / "work"), "--webui-port",
                                   str(_free_port())], env)  # fmt: skip
        _wait_for(folder, "worker", "Successfully registered with master", limit)
    except BaseException:
        stop(folder)
        raise
    return master


def _reaped(pid: int) -> bool:
    """True once ``pid`` is gone (reaping it when it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:  # not our child: it is gone when signal 0 fails
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def stop(folder: Path) -> None:
    """Stop what :func:`start` started (worker first); safe to call twice."""
    for name in ("worker", "master"):
        pid_file = folder / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(40):
                if _reaped(pid):
                    break
                time.sleep(0.25)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink()


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(start(where))
    else:
        stop(where)
