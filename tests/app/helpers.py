"""AppTest helpers: start from app.py as the browser does, and read figures back as data."""
import base64
import html
import json
import re

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.helpers import ROOT

APP = str(ROOT / "app.py")


def open_app(page: str | None = None, **query: str) -> AppTest:
    """Open app.py at `page` (a page module's file, e.g. "pages/sparse.py"; None: the default
    page) with URL query parameters, as a link to /sparse?... does.

    The page is chosen before the first run: AppTest's switch_page finds a callable page only
    by its file name's hash, which is the page's url_path hash, and only until a run has
    registered the pages. Later runs stay on it. A model typed in through `query` is added to
    the options AppTest knows, so later runs re-send it as the browser would (AppTest otherwise
    can't rerun with a typed-in option).
    """
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    if page is not None:
        at.switch_page(page)
    at.run()
    _offer_model(at, query.get("model"))
    return at


def _offer_model(at: AppTest, model: str | None) -> None:
    if model and model not in at.selectbox(key="model").options:
        at.selectbox(key="model").options.append(model)


def set_state(at: AppTest, **values) -> AppTest:
    """Change widget values by key (e.g. the sidebar's text or a typed-in model) and rerun."""
    for key, value in values.items():
        at.session_state[key] = value
    _offer_model(at, at.session_state["model"] if "model" in at.session_state else None)
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


def topk_tables(at: AppTest) -> list[list[list[str]]]:
    """The page's top-k tables (viz.predictions.topk_table's HTML) as rows of cell texts, the header
    row first, spaces collapsed."""
    found = []
    for element in at.get("html"):
        rows = [[" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
                 for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", element.proto.body)]
        if rows and rows[0][0] == "rank":
            found.append(rows)
    return found
