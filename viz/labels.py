"""Token text made safe and readable for plotly labels and hover text.

Plotly renders a subset of HTML in labels, so every token is escaped: a token can never
become markup or a link, whatever the user typed.
"""
import html
import string
import unicodedata

# byte-level BPE (GPT-2, RoBERTa) marks a leading space with "Ġ" and a newline with "Ċ";
# SentencePiece (T5) marks a leading space with "▁"
_MARKERS = str.maketrans({"Ġ": " ", "Ċ": "\\n", "▁": " "})
MAX_TICK_LABELS = 64  # beyond this, tick labels would overlap: show every k-th


def _visible(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cf") and char not in "\t":
        return f"\\x{ord(char):02x}"
    return char


def display_token(token: str) -> str:
    """A token as a reader should see it: markers decoded, control characters made visible.

    Give it the labels models make (AttentionRun.labels, WordSpans.words: decoded by the
    tokenizer), not the pieces as written: a byte-level piece ("Ã¡") only the tokenizer can decode."""
    text = token.translate(_MARKERS).strip() or token
    if text.isprintable():  # no control or format character in it: the usual case, checked in C
        return text
    return "".join(_visible(c) for c in text)


def escape(text: str) -> str:
    """Escape for plotly's HTML-like text and for HTML alike: shows the characters, never renders them.

    Quotes become numeric references (&#34;, &#x27;): plotly.js decodes those, but of the named
    ones only &amp; &lt; &gt; and a few symbols (not &quot;), so "&quot;" would show as typed."""
    return html.escape(text, quote=True).replace("&quot;", "&#34;")


def axis_labels(tokens: list[str], start: int = 0) -> list[str]:
    """One unique, escaped label per position ("3 cat"), so repeated tokens keep their own row;
    `tokens` are those from position `start` on (a window of a long text)."""
    return [escape(f"{i} {display_token(t)}") for i, t in enumerate(tokens, start)]


def tick_labels(labels: list[str], most: int = MAX_TICK_LABELS) -> list[str]:
    """Every k-th label, k the smallest step that leaves at most `most`: an axis' tickvals that don't overlap."""
    return labels[::max(1, -(-len(labels) // most))]


def markdown_literal(text: str, limit: int = 80) -> str:
    """`text` (e.g. a value from a link) for a Streamlit message, which renders markdown: every
    ASCII punctuation mark backslash-escaped, so it shows as typed and never becomes a link,
    an image fetched from elsewhere, a colour or an icon; cut at `limit` characters."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return "".join("\\" + c if c in string.punctuation else c for c in display_token(cut))
