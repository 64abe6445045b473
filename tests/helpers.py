"""What several test modules share that isn't a fixture: the project's folder, awkward texts, a
real Streamlit server (the benchmarks start theirs here too)."""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
STREAMLIT_RUN = (sys.executable, "-m", "streamlit", "run", "app.py")

ODD_TEXTS = {
    "emoji": "The 🐈 sat on the 🧶 👩‍👩‍👧",
    "cjk": "猫がマットの上に座った。中文也可以。",
    "right-to-left": "القطة جلست على الحصيرة שלום",
    "combining": "Zalgo: Z̵̢͙a̴͇͝l̶̰̈g̸̱͌o̵̲͑ and cafe\u0301",
    "control and NUL": "tab\there\x00nul\x1bescape\u200bzero-width",
    "only special tokens": "[CLS] [SEP] [MASK] <s> </s> [PAD]",
}
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking")  # Chromium as root, headless


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:<port>
    log: Path  # its output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_process(log_dir: Path, command: tuple[str, ...] = STREAMLIT_RUN, cwd: Path = ROOT,
                      **env: str) -> Iterator[Server]:
    """A `streamlit run app.py` (or `command`, given Streamlit's options) on a free loopback port,
    offline, its output in log_dir; yields it once it answers its health check, stops it after.
    `env` adds variables. The tests' servers (streamlit_server) and the benchmarks' (the
    project's own data folder) are both this."""
    port = _free_port()
    log_path = log_dir / f"streamlit-{port}.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [*command, "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        log.close()
        raise RuntimeError(f"streamlit did not start; see {log_path}")
    try:
        yield Server(server, url, log_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def streamlit_server(data_dir: Path, command: tuple[str, ...] = STREAMLIT_RUN, cwd: Path = ROOT) -> Iterator[str]:
    """A fresh streamlit_process with its own data folder `data_dir`, allowed to load the models tests
    save to temp folders; yields its URL."""
    with streamlit_process(data_dir, command, cwd, EXPLORER_DATA_DIR=str(data_dir),
                           EXPLORER_ALLOWED_FOLDERS=tempfile.gettempdir()) as server:
        yield server.url
