"""viz.predictions: the top-k table (escaped, shaded, special tokens marked)."""
from viz.predictions import topk_table


def test_the_table_escapes_every_label_and_token_and_shades_by_probability():
    html = topk_table(['<b onmouseover="x">'], [["<script>alert(1)</script>", "Ġthe"]], [[0.9, 0.05]])
    assert "<script>" not in html and "<b " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>" in html and "&lt;b onmouseover=" in html
    assert ">the<br>" in html and ">5.0%<" in html  # a byte-level BPE token as a reader sees it
    dark, light = html.split("<td")[1:3]
    assert "color: white" in dark and "color: black" in light


def test_the_table_pads_short_columns_and_scales_its_type():
    html = topk_table(["a", "b"], [["x"], ["y", "z"]], [[0.4], [0.3, 0.2]], scale=1.5)
    assert html.count("<tr>") == 3 and "font-size: 1.50rem" in html
    second_row = html.split("<tr>")[3]
    assert second_row.count("<td") == 2 and ">z<br>" in second_row and ">20.0%<" in second_row


def test_special_tokens_are_marked_and_the_others_not():
    html = topk_table(["mask 1"], [["[MASK]", "rome"]], [[0.36, 0.2]], special=[[True, False]])
    special, word = html.split("<td")[1:3]
    assert "[MASK]" in special and ">special</span>" in special and "dashed" in special
    assert "special" not in word and "dashed" not in word
    assert "special" not in topk_table(["a"], [["[MASK]"]], [[0.36]])  # not marked unless said so
