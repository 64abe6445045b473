"""bertviz's head view, model view and neuron view as standalone HTML that needs no network.

bertviz's own HTML asks a CDN for require.js, d3 and jQuery. Here the page is assembled from
bertviz's view scripts (read from the installed package), d3 5.7.0 as shipped inside the
mpld3 package (the version bertviz asks for), jQuery from XStatic-jQuery, and a few lines
standing in for require.js. Parameters are JSON with <, >, & escaped, so no token can end
the script; bertviz draws tokens with d3's .text(), which never parses markup.

bertviz sends every weight as text, so the HTML grows with layers x heads x tokens²: callers
pass only the first tokens and the layers they need, and weights are rounded (BertvizLimits).
"""
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viz.labels import display_token

ROOT_ID = "bertviz"
PAIR_NAMES = ("All", "Sentence A -> Sentence A", "Sentence B -> Sentence B",
              "Sentence A -> Sentence B", "Sentence B -> Sentence A")
NEURON_FILTERS = dict(zip(PAIR_NAMES, ("all", "aa", "bb", "ab", "ba")))

# bertviz's scripts call require.config(...) and requirejs(['jquery', 'd3'], fn); the libraries
# are already on the page, so hand them over instead of fetching modules.
REQUIRE_SHIM = """
window.requirejs = window.require = function (deps, callback) {
  var libraries = {jquery: window.jQuery, d3: window.d3};
  callback.apply(null, deps.map(function (name) { return libraries[name]; }));
};
window.require.config = function () {};
"""


class BertvizUnavailable(RuntimeError):
    """A library the offline views need is not installed; str(error) says which."""


@dataclass(frozen=True)
class BertvizLimits:
    max_tokens: int = 40  # first tokens sent; 40 tokens x 6 layers x 12 heads is about 1 MB
    decimals: int = 3  # weights are rounded to this many decimals


@dataclass(frozen=True)
class BertvizEntry:
    """One choice of bertviz's "Attention:" menu: a family of matrices and their token lists."""

    name: str
    attentions: np.ndarray  # [layers, heads, q, k]
    left_tokens: list[str]  # q, queries
    right_tokens: list[str]  # k, keys
    queries: np.ndarray | None = None  # [layers, heads, q, d_head], neuron view only
    keys: np.ndarray | None = None  # [layers, heads, k, d_head], neuron view only


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates without importing (mpld3 would import matplotlib)
    if spec is None or not spec.submodule_search_locations:
        raise BertvizUnavailable(f"the offline bertviz views need the '{module}' package "
                                 "(pip install -r requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def _libraries() -> str:
    d3 = _package_dir("mpld3") / "js" / "d3.v5.min.js"
    jquery = _package_dir("xstatic.pkg.jquery") / "data" / "jquery.min.js"
    return "".join(f"<script>{path.read_text(encoding='utf-8')}</script>\n" for path in (d3, jquery))


@functools.cache
def _view_script(name: str) -> str:
    return (_package_dir("bertviz") / f"{name}.js").read_text(encoding="utf-8")


def safe_json(value) -> str:
    """JSON that is also safe inside <script>: no '<', '>', '&' or JS line separators unescaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _rounded(array: np.ndarray, limits: BertvizLimits) -> list:
    return np.round(np.asarray(array, dtype=np.float64), limits.decimals).tolist()


def _shown(tokens: list[str]) -> list[str]:
    return [display_token(t) for t in tokens]


def _first(array: np.ndarray | None, keep: int, axes: tuple[int, ...]) -> np.ndarray | None:
    if array is None:
        return None
    index = [slice(None)] * array.ndim
    for axis in axes:
        index[axis] = slice(0, keep)
    return array[tuple(index)]


def self_attention_entries(attentions: np.ndarray, tokens: list[str], sentence_b_start: int | None,
                           limits: BertvizLimits, queries: np.ndarray | None = None,
                           keys: np.ndarray | None = None) -> list[BertvizEntry]:
    """bertviz's menu for the first limits.max_tokens tokens of a self-attention stack
    [layers, heads, n, n]: "All", plus the four sentence blocks when sentence B starts in view."""
    keep = min(len(tokens), limits.max_tokens)
    attentions, tokens = _first(attentions, keep, (-2, -1)), tokens[:keep]
    queries, keys = _first(queries, keep, (-2,)), _first(keys, keep, (-2,))
    entries = [BertvizEntry(PAIR_NAMES[0], attentions, tokens, tokens, queries, keys)]
    if sentence_b_start is None or not 0 < sentence_b_start < keep:
        return entries
    a, b = slice(0, sentence_b_start), slice(sentence_b_start, keep)
    for name, (rows, cols) in zip(PAIR_NAMES[1:], ((a, a), (b, b), (a, b), (b, a))):
        entries.append(BertvizEntry(
            name, attentions[..., rows, cols], tokens[rows], tokens[cols],
            None if queries is None else queries[..., rows, :], None if keys is None else keys[..., cols, :],
        ))
    return entries


def encoder_decoder_entries(encoder: np.ndarray, decoder: np.ndarray, cross: np.ndarray,
                            encoder_tokens: list[str], decoder_tokens: list[str],
                            limits: BertvizLimits) -> list[BertvizEntry]:
    """bertviz's Encoder / Decoder / Cross menu, each cut to the first limits.max_tokens tokens."""
    n, m = min(len(encoder_tokens), limits.max_tokens), min(len(decoder_tokens), limits.max_tokens)
    enc, dec = encoder_tokens[:n], decoder_tokens[:m]
    return [
        BertvizEntry("Encoder", encoder[..., :n, :n], enc, enc),
        BertvizEntry("Decoder", decoder[..., :m, :m], dec, dec),
        BertvizEntry("Cross", cross[..., :m, :n], dec, enc),
    ]


def _entry_params(entry: BertvizEntry, layers: list[int], limits: BertvizLimits) -> dict:
    return {
        "name": entry.name,
        "attn": _rounded(entry.attentions[layers], limits),
        "left_text": _shown(entry.left_tokens),
        "right_text": _shown(entry.right_tokens),
    }


def _menu(entries: list[BertvizEntry], values: list[str]) -> str:
    if len(entries) < 2:
        return ""
    options = "".join(f'<option value="{v}">{e.name}</option>' for v, e in zip(values, entries))
    return f'<span class="dropdown-label">Attention: </span><select id="filter">{options}</select>'


def _page(controls: str, scripts: str, zoom: float) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<style>body{{margin:0;background:white;zoom:{zoom:g};"
        "font-family:'Helvetica Neue',Helvetica,Arial,sans-serif}"
        "select{font-size:14px;margin-right:12px}</style>"
        f"{_libraries()}<script>{REQUIRE_SHIM}</script></head><body>"
        f"<div id='{ROOT_ID}' style='padding:8px'><span style='user-select:none'>{controls}</span>"
        f"<div id='vis'></div></div>{scripts}</body></html>"
    )


def _inline(script: str) -> str:
    return f"<script>\n{script}\n</script>"


def head_view_html(entries: list[BertvizEntry], layers: list[int], layer: int | None = None,
                   limits: BertvizLimits = BertvizLimits(), zoom: float = 1.0) -> str:
    """bertviz's head view of `entries` (all heads of one layer as lines between tokens); `zoom`
    enlarges the whole view (a projector)."""
    params = {
        "attention": [_entry_params(e, layers, limits) for e in entries],
        "default_filter": "0",
        "root_div_id": ROOT_ID,
        "layer": layer if layer in layers else layers[0],
        "heads": None,
        "include_layers": layers,
    }
    controls = 'Layer: <select id="layer"></select>' + _menu(entries, [str(i) for i in range(len(entries))])
    return _page(controls, _inline(_view_script("head_view").replace("PYTHON_PARAMS", safe_json(params))), zoom)


def model_view_html(entries: list[BertvizEntry], layers: list[int], limits: BertvizLimits = BertvizLimits(),
                    zoom: float = 1.0) -> str:
    """bertviz's model view of `entries` (a thumbnail per layer and head)."""
    heads = list(range(entries[0].attentions.shape[1]))
    params = {
        "attention": [_entry_params(e, layers, limits) for e in entries],
        "default_filter": "0",
        "display_mode": "light",
        "root_div_id": ROOT_ID,
        "include_layers": layers,
        "include_heads": heads,
        "total_heads": len(heads),
    }
    controls = _menu(entries, [str(i) for i in range(len(entries))])
    return _page(controls, _inline(_view_script("model_view").replace("PYTHON_PARAMS", safe_json(params))), zoom)


def neuron_view_html(entries: list[BertvizEntry], causal: bool, layer: int = 0, head: int = 0,
                     limits: BertvizLimits = BertvizLimits(), zoom: float = 1.0) -> str:
    """bertviz's neuron view: q, k, q×k and softmax for one head. Entries carry queries and keys
    of every layer (the view's layer menu counts from 0)."""
    attention = {}
    for entry in entries:
        every_layer = list(range(entry.attentions.shape[0]))
        attention[NEURON_FILTERS[entry.name]] = {
            **_entry_params(entry, every_layer, limits),
            "queries": _rounded(entry.queries, limits),
            "keys": _rounded(entry.keys, limits),
        }
    params = {
        "attention": attention,
        "default_filter": "all",
        "root_div_id": ROOT_ID,
        "bidirectional": not causal,
        "display_mode": "light",
        "layer": layer,
        "head": head,
    }
    controls = ('<span class="dropdown-label">Layer: </span><select id="layer"></select>'
                '<span class="dropdown-label">Head: </span><select id="att_head"></select>'
                + _menu(entries, [NEURON_FILTERS[e.name] for e in entries]))
    scripts = _inline("window.bertviz_params = " + safe_json(params) + ";") + _inline(_view_script("neuron_view"))
    return _page(controls, scripts, zoom)
