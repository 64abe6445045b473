"""The app's command: `attention-explorer [streamlit run options]` once installed, or `python -m pages`.

Runs `streamlit run app.py` with the project's Streamlit settings (.streamlit/config.toml) passed
as options, so they hold from any folder and in an installed copy, where no .streamlit folder sits
beside app.py. Options given on the command line come after them and win, e.g.
`attention-explorer --server.port 8502`.
"""
import json
import sys
import tomllib
from pathlib import Path

from streamlit.web import cli

APP = Path(__file__).resolve().parents[1] / "app.py"  # beside pages/, in the project and in site-packages
SETTINGS = Path(__file__).with_name("streamlit_config.toml")  # a link to .streamlit/config.toml; a copy in a wheel


def settings_options(settings: dict) -> list[str]:
    """Streamlit settings as `streamlit run` options: {"server": {"headless": True}} -> ["--server.headless=true"]."""
    return [f"--{section}.{name}={json.dumps(value) if isinstance(value, bool) else value}"
            for section, options in settings.items() for name, value in options.items()]


def streamlit_args(extra: list[str]) -> list[str]:
    """The arguments of `streamlit run app.py` with the project's settings, then `extra`."""
    return ["run", str(APP), *settings_options(tomllib.loads(SETTINGS.read_text())), *extra]


def main() -> None:
    cli.main(streamlit_args(sys.argv[1:]), prog_name="attention-explorer")


if __name__ == "__main__":
    main()
