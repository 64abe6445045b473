"""Predicted tokens as an HTML table: a row per rank, a column per checkpoint, mask or position,
each cell a token over its probability, shaded by it. Special tokens, when shown, are marked."""
import numpy as np
from plotly.colors import sample_colorscale

from viz.labels import display_token, escape
from viz.theme import ATTENTION_SCALE

PAD = "padding: 0.3em 0.7em; white-space: nowrap"
HEADER = f'style="{PAD}; text-align: left; font-weight: 600; border-bottom: 1px solid #ccc"'
SPECIAL_BADGE = ('<span style="font-size: 0.7em; border: 1px solid currentColor; border-radius: 0.3em; '
                 'padding: 0 0.3em; margin-left: 0.4em">special</span>')


def topk_table(labels: list[str], tokens: list[list[str]], probabilities: list[list[float]], scale: float = 1.0,
               special: list[list[bool]] | None = None) -> str:
    """An HTML table: rank rows x columns named by `labels`, each cell a token over its probability
    ("italy / 62.1%"), shaded by it; every label and token is escaped. `special` (as `tokens`)
    marks the tokenizer's special tokens with a dashed frame and a "special" badge. `scale`
    enlarges the type (lecture mode); two-line cells keep the columns narrow enough for many."""
    k = max((len(column) for column in tokens), default=0)
    special = special or [[False] * len(column) for column in tokens]
    head = "".join(f"<th {HEADER}>{escape(label)}</th>" for label in labels)
    rows = []
    for rank in range(k):
        cells = "".join(_cell(words[rank], column[rank], marks[rank]) if rank < len(words)
                        else f'<td style="{PAD}"></td>' for words, column, marks in zip(tokens, probabilities, special))
        rows.append(f"<tr><th {HEADER}>{rank + 1}</th>{cells}</tr>")
    return (f'<div style="overflow-x: auto"><table style="border-collapse: collapse; font-size: {scale:.2f}rem">'
            f"<thead><tr><th {HEADER}>rank</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _cell(token: str, probability: float, special: bool) -> str:
    red, green, blue = sample_colorscale(ATTENTION_SCALE, [float(np.clip(probability, 0, 1))], colortype="tuple")[0]
    ink = "white" if probability > 0.5 else "black"
    colors = f"background-color: rgb({red * 255:.0f}, {green * 255:.0f}, {blue * 255:.0f}); color: {ink}"
    frame = "; outline: 2px dashed currentColor; outline-offset: -4px" if special else ""
    return (f'<td style="{PAD}; {colors}{frame}">{escape(display_token(token))}{SPECIAL_BADGE if special else ""}'
            f'<br><span style="font-size: 0.8em">{probability:.1%}</span></td>')
