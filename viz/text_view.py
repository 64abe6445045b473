"""The whole text shaded by one token's attention: a view that reads at any length.

A heatmap of 8,192 tokens has 67 million cells and no room for labels; one row of it (where one
token looks) or one column (who looks at a token) laid over the text itself keeps every word
readable. One span per token: under 100 bytes each, about 0.8 MB at 8,192 tokens.
"""
import functools

import numpy as np
from plotly.colors import sample_colorscale

from viz.labels import display_token, escape
from viz.theme import ATTENTION_SCALE, HIGHLIGHT_COLOR

LEVELS = 100  # shades between no weight and the largest
LARGEST = 5  # tokens named above the text: on a long text most lie outside the visible part of the box
BEFORE = 80  # at most this many tokens (at scale 1) and
BEFORE_LINES = 4  # line breaks stay in view above the chosen one; earlier text is folded above them
DARK_FROM = 0.55  # from this shade on, white letters read better than black
SPACE_MARKERS = ("Ġ", "▁")  # byte-level BPE and SentencePiece mark a leading space so
BLANK_MARKERS = "ĠĊ▁ \n"  # a token of only these is whitespace (byte-level BPE writes a newline "Ċ")


@functools.cache
def _shades() -> tuple[str, ...]:
    """LEVELS + 1 CSS colours of the attention scale, light to dark."""
    return tuple(sample_colorscale(ATTENTION_SCALE, list(np.linspace(0, 1, LEVELS + 1))))


def leading_spaces(tokens: list[str]) -> list[bool]:
    """[n] whether a space goes before each token, from the tokenizer's own markers: "Ġ"/"▁" for
    byte-level BPE and SentencePiece; for WordPiece (no such markers) before every token but the
    first and "##" continuations."""
    if any(t.startswith(SPACE_MARKERS) for t in tokens):
        return [t.startswith(SPACE_MARKERS) for t in tokens]
    return [i > 0 and not t.startswith("##") for i, t in enumerate(tokens)]


def _shown(label: str, token: str) -> str:
    """A token's escaped text; a space or line break alone is drawn as one, so it stays hoverable."""
    if not token.strip(BLANK_MARKERS):
        return "↵" * token.count("Ċ") or "\u00a0"
    return escape(display_token(label))


def first_in_view(tokens: list[str], chosen: int | None, scale: float = 1.0) -> int:
    """The first position left unfolded, so the box opens with `chosen` in view (st.html runs no
    script that could scroll to it): at most BEFORE / scale² tokens and BEFORE_LINES line breaks
    before it; 0 (nothing folded) when that reaches the start or no token is chosen."""
    if chosen is None:
        return 0
    start = max(0, chosen - int(BEFORE / scale ** 2))
    breaks = [i for i in range(start, chosen) if "Ċ" in tokens[i]]
    return breaks[-BEFORE_LINES] + 1 if len(breaks) >= BEFORE_LINES else start


def shaded_text(labels: list[str], tokens: list[str], values: np.ndarray, chosen: int | None, title: str,
                value_name: str = "weight", scale: float = 1.0) -> str:
    """HTML of the text, token by token, each shaded by values[i] / max(values); hover (a title)
    gives position and value. labels [n] as a reader sees them (AttentionRun.labels), tokens [n]
    as the tokenizer writes them (for spaces and line breaks), values [n] >= 0. `chosen` (a position
    of this text, or None) is outlined, and the LARGEST values are named above the text with their
    positions; `scale` enlarges the type (lecture mode). The box opens on `chosen`: the text
    before a few lines above it (first_in_view) is folded into a <details> the reader can open,
    still part of the page. Every token is escaped: none can become markup."""
    values = np.asarray(values, dtype=np.float64)
    peak = float(values.max()) if values.size and values.max() > 0 else 1.0
    levels = np.rint(LEVELS * np.clip(values / peak, 0, 1)).astype(int)
    shades, spaces = _shades(), leading_spaces(tokens)
    parts = []
    for i, (label, token) in enumerate(zip(labels, tokens)):
        ink = "#fff" if levels[i] >= DARK_FROM * LEVELS else "#111"
        outline = f";outline:2px solid {HIGHLIGHT_COLOR}" if i == chosen else ""
        blank = not token.strip(BLANK_MARKERS)
        shown = _shown(label, token)
        parts.append(f"{' ' if spaces[i] and not blank else ''}<span style=\"background:{shades[levels[i]]};"
                     f"color:{ink}{outline}\" title=\"{i} · {value_name} {values[i]:.4f}\">{shown}</span>"
                     + "<br>" * token.count("Ċ"))
    start = first_in_view(tokens, chosen, scale)
    folded = (f"<details><summary style=\"cursor:pointer;color:#555\">Tokens 0–{start - 1:,} come before: "
              f"show them</summary>{''.join(parts[:start])}</details>" if start else "")
    top = np.argsort(-values, kind="stable")[:LARGEST]  # where the weight is, wherever the box is scrolled
    largest = " · ".join(f"“{_shown(labels[i], tokens[i])}” {i} ({values[i]:.4f})" for i in top)
    return (f"<div style=\"font-weight:600;margin-bottom:4px\">{escape(title)}</div>"
            f"<div style=\"font-size:0.85rem;margin-bottom:4px\">Largest: {largest}</div>"
            "<div style=\"max-height:420px;overflow-y:auto;line-height:1.9;white-space:pre-wrap;"
            f"border:1px solid #ddd;padding:8px;font-size:{scale:.2f}rem;font-family:DejaVu Sans, Arial, sans-serif\">"
            + folded + "".join(parts[start:]) + "</div>")
