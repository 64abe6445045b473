"""What several test modules share that isn't a fixture: the project's folder, awkward texts, a
real Streamlit server."""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(data_dir: Path, command: tuple[str, ...] = STREAMLIT_RUN, cwd: Path = ROOT):
    """A fresh `streamlit run app.py` (or `command`, given Streamlit's options) on a free loopback port,
    offline; yields its URL."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EXPLORER_DATA_DIR": str(data_dir),
           "EXPLORER_ALLOWED_FOLDERS": tempfile.gettempdir()}  # where tests save tiny models
    log = open(data_dir / f"streamlit-{port}.log", "w")
    server = subprocess.Popen(
        [*command, "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
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
        raise RuntimeError(f"streamlit did not start; see {log.name}")
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
