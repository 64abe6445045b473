"""AppTest helpers: start from app.py as the browser does, and read figures back as data."""
import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.helpers import ROOT

APP = str(ROOT / "app.py")


def open_app(page: str | None = None, **query: str) -> AppTest:
    """Run app.py (optionally with URL query parameters), then switch to `page`.

    AppTest (streamlit 1.67) drops the sidebar's elements from its tree after switch_page and
    after reruns, so set the sidebar's model/text through `query` or `set_state(at, text=...)`
    and read them back from `at.session_state`, rather than through its widgets. A model typed
    in through `query` is added to the options AppTest knows, so later runs re-send it as the
    browser would (AppTest otherwise can't rerun with a typed-in option).
    """
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    model = query.get("model")
    if model and model not in at.selectbox(key="model").options:
        at.selectbox(key="model").options.append(model)
    if page is not None:
        at.switch_page(page).run()
    return at


def set_state(at: AppTest, **values) -> AppTest:
    """Change widget values by key (e.g. the sidebar's text) and rerun."""
    for key, value in values.items():
        at.session_state[key] = value
    return at.run()


def figures(at: AppTest) -> list[dict]:
    """Every plotly figure on the page, as the JSON Streamlit sends to the browser."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def figure(at: AppTest, title_start: str) -> dict:
    matches = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith(title_start)]
    assert matches, f"no figure titled {title_start!r} in {[f['layout'].get('title') for f in figures(at)]}"
    return matches[0]


def array(value) -> np.ndarray:
    """A plotly array as numpy: plain lists, or base64 typed arrays {'dtype', 'bdata', 'shape'}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(s) for s in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


def messages(at: AppTest) -> str:
    """All errors, warnings and infos on the page, as one string to search."""
    return " | ".join(str(e.value) for kind in (at.error, at.warning, at.info) for e in kind)
