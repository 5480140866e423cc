"""Take the pictures of docs/integrations.md with headless Chromium (Debian's ``chromium``).

    python docs/screenshots.py [STUDY_DIR] [--out docs/img]

STUDY_DIR defaults to ``runs/stock`` (``tpetune stock`` makes it). The script starts
``tpetune dashboard`` and ``tensorboard`` on free 127.0.0.1 ports over exports in a temporary
folder (the study is only read), screenshots their pages and stops both. Both front ends are
single-page apps that draw after their data arrives, so Chromium runs with a virtual time
budget that lets the page finish before the picture is taken.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=25000",
]
#: (file, page under the dashboard's study URL, window size)
DASHBOARD_SHOTS = [
    ("dashboard-history.png", "", "1400,1000"),
    ("dashboard-parallel.png", "/smartSelection", "1400,680"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], tries: int = 240) -> None:
    for _ in range(tries):
        if proc.poll() is not None:
            sys.exit(f"screenshots: the server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"screenshots: {url} did not answer")


def shoot(url: str, path: Path, size: str, tmp: Path, tries: int = 3) -> None:
    """One PNG of ``url``; a Chromium that hangs (seen on a loaded machine) is tried again."""
    for _ in range(tries):
        profile = tempfile.mkdtemp(dir=tmp)
        command = [
            shutil.which("chromium") or "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            f"--screenshot={path}",
            url,
        ]
        # Its own process group: a hung Chromium is killed with all its helper processes.
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"screenshots: chromium hung on {url}; trying again", file=sys.stderr)
            continue
        if proc.returncode != 0:
            sys.exit(f"screenshots: chromium exited {proc.returncode} on {url}")
        print(f"{path}  <- {url}")
        return
    sys.exit(f"screenshots: no picture of {url} after {tries} tries")


def stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM, not SIGINT: a script started in the background has SIGINT ignored, and so
    # would its children. Both servers stop on it (tpetune dashboard with exit code 0).
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="?", type=Path, default=Path("runs/stock"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        dashboard = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tpetune",
                "dashboard",
                str(args.study_dir),
                "--port",
                str(port),
                "--db",
                str(tmp / "optuna.db"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}/dashboard/studies/1"
            wait_http(f"http://127.0.0.1:{port}/api/studies", dashboard)
            for name, page, size in DASHBOARD_SHOTS:
                shoot(base + page, args.out / name, size, tmp)
        finally:
            stop(dashboard)

        logdir = tmp / "tensorboard"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tpetune",
                "export",
                str(args.study_dir),
                "--format",
                "tensorboard",
                "-o",
                str(logdir),
            ],
            check=True,
        )
        port = free_port()
        board = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/", board)
            shoot(f"http://127.0.0.1:{port}/#hparams", args.out / "tensorboard-hparams.png",
                  "1500,800", tmp)  # fmt: skip
        finally:
            stop(board)


if __name__ == "__main__":
    main()
