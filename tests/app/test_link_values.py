"""A link whose values the Heads page's controls don't offer (layer 99, head -1, options that
don't exist): the page still draws, says what it refused, and shows its defaults instead of
silently dropping the values. The other pages: tests/e2e/test_link_values_e2e.py."""
from streamlit.testing.v1 import AppTest

from tests.app.conftest import messages, open_app
from viz.labels import markdown_literal

BAD = dict(layer="99", head="-1", aggregation="median", bertviz_tokens="1000000000", words="maybe",
           image_format="gif", statistics="yes")
SHOWN = dict(layer=0, head=0, aggregation="one head", bertviz_tokens=40, words=False, image_format="PNG",
             statistics=False)


def test_out_of_range_link_values_are_refused_with_a_message():
    at = open_app(None, text="The cat sat on the mat.", **BAD)
    assert not at.exception and not at.error
    assert {key: at.session_state[key] for key in BAD} == SHOWN
    said = messages(at)
    for key, raw in BAD.items():
        assert f"'{markdown_literal(raw)}'" in said, f"nothing says why {key}={raw} isn't shown: {said}"
    at.slider(key="head").set_value(3).run()
    assert "The link" not in messages(at)  # said once, when the link opened


def test_accepted_link_values_raise_no_warning():
    at = open_app(None, text="The cat sat.", layer="2", aggregation="layer mean", words="true", statistics="true")
    assert not at.warning, [w.value for w in at.warning]


def test_a_link_value_is_shown_as_text_never_as_markdown():
    payload = "![x](http://evil.example/p.png) :red[boo] [link](javascript:alert(1))"
    at = open_app(None, text="The cat sat.", aggregation=payload)
    warning = next(w.value for w in at.warning if "aggregation" in w.value)
    assert "![x](" not in warning and ":red[" not in warning and "](javascript" not in warning
    assert markdown_literal(payload) in warning


def test_a_failing_click_callback_becomes_a_warning_and_keeps_the_text():
    def script():
        import streamlit as st

        from pages._shared import report_callback_failure, safe_callback

        def focus_missing_point():
            raise KeyError("customdata")  # e.g. a selection payload without the expected fields

        notices = st.container()
        report_callback_failure(notices)
        st.text_area("Text", "mine", key="text")
        st.button("Focus", on_click=safe_callback(focus_missing_point))

    at = AppTest.from_function(script, default_timeout=30).run()
    at.text_area(key="text").set_value("my own words").run()
    at.button[0].click().run()
    assert not at.exception
    assert "That click couldn't be followed (KeyError" in at.warning[0].value
    assert at.text_area(key="text").value == "my own words"
    at.run()
    assert not at.warning  # said once
