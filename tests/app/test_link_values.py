"""A link whose values the Heads page's controls don't offer (layer 99, head -1, options that
don't exist): the page still draws, says what it refused, and shows its defaults instead of
silently dropping the values. The other pages: tests/e2e/test_link_values_e2e.py."""
from streamlit.testing.v1 import AppTest

from tests.app.helpers import figure, messages, open_app
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


def test_links_name_aggregations_and_metrics_by_the_labels_shown():
    """The URL holds what a control shows (Streamlit binds the option's label); the page maps it to
    models' Aggregation and HeadMetric. Links made before those were enums keep working."""
    at = open_app(None, text="The cat sat.", aggregation="rollout", metric="to previous", statistics="true")
    assert not at.warning and not at.exception, [w.value for w in at.warning]
    assert figure(at, "Attention rollout up to layer 0")
    assert figure(at, "To previous (share) of every head")
    assert [at.segmented_control(key="aggregation").options, at.selectbox(key="metric").options[:2]] == [
        ["one head", "layer mean", "layer max", "mean of all", "rollout"], ["entropy", "mean distance"]]


def test_a_link_with_a_metrics_identifier_instead_of_its_label_is_refused_with_a_message():
    at = open_app(None, text="The cat sat.", metric="to-previous", aggregation="layer-mean", statistics="true")
    said = messages(at)
    assert f"'{markdown_literal('to-previous')}'" in said and f"'{markdown_literal('layer-mean')}'" in said
    assert at.session_state["metric"] == "entropy" and at.session_state["aggregation"] == "one head"


def test_the_url_holds_the_models_plain_key_and_label_links_still_open_it():
    """The picker shows "smollm2 (decoder LLM, works offline)"; the URL says model=smollm2. The Sparse page's
    pattern view loads no model, so nothing here loads one."""
    at = open_app("pages/sparse.py")
    assert "model" not in at.query_params  # the default, as bound controls leave it out
    assert "smollm2 (decoder LLM, works offline)" in at.selectbox(key="model").options
    at.selectbox(key="model").set_value("smollm2").run()
    assert at.query_params["model"] == "smollm2"
    for link in ("smollm2", "smollm2 (decoder LLM, works offline)", "bert-base-cased"):  # a label: an older link
        at = open_app("pages/sparse.py", model=link)
        assert at.session_state["model"] == link.split(" (")[0] and at.query_params["model"] == link.split(" (")[0]
        assert not at.warning and not at.exception, [w.value for w in at.warning]
