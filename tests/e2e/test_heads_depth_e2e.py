"""The Heads page in depth in Chromium with every outside request blocked: lecture mode, aggregation,
PNG and SVG from the modebar camera, bertviz's three views drawn offline, focusing a head from statistics."""
import io

from PIL import Image
from playwright.sync_api import expect

CHART = '[data-testid="stPlotlyChart"]:not([data-stale="true"] *)'  # not the old copy a rerun is replacing
TEXT = "The cat sat on the mat because it was tired."


def _chart(page, title_start: str):
    return page.locator(CHART).filter(has=page.locator(".gtitle", has_text=title_start))


def _camera(page, chart, title: str):
    chart.hover()
    with page.expect_download() as download:
        chart.locator(f'.modebar-btn[data-title="{title}"]').click()
    return download.value


def _segment(page, label: str) -> None:
    page.get_by_role("radio", name=label, exact=True).click()  # a segmented control is a radio group


STATISTICS = "Head statistics: entropy, distance and where each head looks"


def _bertviz_frame(page):
    return page.frame_locator('iframe[srcdoc*="bertviz"]')


def _assert_slider_values_clear(page) -> None:
    """Each slider's value (large type in lecture mode) sits between its label and its thumb, overlapping neither."""
    sliders = page.locator('[data-testid="stMain"] [data-testid="stSlider"]')
    expect(sliders.first).to_be_visible()
    for slider in sliders.all():
        value = slider.get_by_test_id("stSliderThumbValue")
        label = slider.get_by_test_id("stWidgetLabel").locator("p").bounding_box()
        text, thumb = value.bounding_box(), value.locator("..").bounding_box()
        assert text["y"] + text["height"] <= thumb["y"] + 0.5, (text, thumb)
        assert text["y"] >= label["y"] + label["height"] - 0.5, (label, text)


def test_lecture_mode_aggregation_export_and_offline_bertviz(browser_page):
    bp, page = browser_page, browser_page.page
    bp.open(f"/?lecture=true&text={TEXT.replace(' ', '+')}")
    expect(page.locator('[data-testid="stSidebar"]')).to_have_attribute("data-collapsed", "true")
    expect(page.locator('[data-testid="stExpandSidebarButton"]')).to_have_count(1)  # one click brings it back
    expect(page.locator("h1").first).to_have_css("font-size", "54.4px")  # 3.4rem, up from 2.75rem
    expect(page.get_by_text(STATISTICS, exact=True)).to_be_visible()  # folded into an expander
    _assert_slider_values_clear(page)
    bp.screenshot("heads_depth_lecture")

    _segment(page, "layer mean")
    bp.wait_idle()
    focused = _chart(page, "Layer 0, mean of its 12 heads")
    expect(focused).to_have_count(1)
    assert "aggregation=layer+mean" in page.url or "aggregation=layer%20mean" in page.url

    png = _camera(page, focused, "Download plot as a PNG")
    assert png.suggested_filename == "attention_minilm_self-attention_layer-mean_L0.png"
    image = Image.open(io.BytesIO(open(png.path(), "rb").read()))
    assert image.format == "PNG" and image.width >= 3 * focused.bounding_box()["width"] - 3  # scale 3

    _segment(page, "SVG")
    bp.wait_idle()
    svg = _camera(page, _chart(page, "Layer 0, mean of its 12 heads"), "Download plot")
    assert svg.suggested_filename.endswith(".svg")
    assert open(svg.path(), encoding="utf-8").read().lstrip().startswith("<svg")

    page.get_by_text("bertviz, offline", exact=True).click()
    # each view: a text it writes into its SVG, and how many drawn marks (lines, paths, boxes) it must have
    for view, text, marks in (("head view", "cat", 13 * 13), ("model view", "Heads", 6 * 12),
                              ("neuron view", "cat", 13)):
        _segment(page, view)
        bp.wait_idle()
        frame = _bertviz_frame(page)
        expect(frame.locator("#vis svg text").filter(has_text=text).first).to_be_attached()
        drawn = frame.locator("#vis svg line, #vis svg path, #vis svg rect").count()
        assert drawn >= marks, f"{view} drew {drawn} marks"
        bp.screenshot(f"heads_depth_bertviz_{view.replace(' ', '_')}")
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.assert_healthy()


def test_statistics_focus_a_head_by_cell_and_by_row(browser_page):
    bp, page = browser_page, browser_page.page
    bp.open(f"/?text={TEXT.replace(' ', '+')}&metric=to+previous")
    expect(_chart(page, "of every head")).to_have_count(0)  # folded: nothing computed until opened
    page.get_by_text(STATISTICS, exact=True).click()
    bp.wait_idle()
    assert "statistics=true" in page.url  # an open section is part of the link
    stats = _chart(page, "To previous (share) of every head")
    expect(stats).to_have_count(1)
    stats.scroll_into_view_if_needed()
    point = stats.locator(".scatterlayer path.point").nth(3 * 12 + 7)  # layer 3, head 7
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    bp.wait_idle()
    expect(_chart(page, "Layer 3, head 7 (self-attention)")).to_have_count(1)
    assert "layer=3" in page.url and "head=7" in page.url

    table = page.locator('[data-testid="stDataFrame"]')
    table.scroll_into_view_if_needed()
    bp.page.wait_for_timeout(500)
    box = table.bounding_box()
    row_height, header = 35, 35  # glide-data-grid defaults in Streamlit
    page.mouse.click(box["x"] + 18, box["y"] + header + row_height * (1 + 0.5))  # the row of layer 0, head 1
    bp.wait_idle()
    expect(_chart(page, "Layer 0, head 1 (self-attention)")).to_have_count(1)
    bp.screenshot("heads_depth_statistics")
    assert not bp.blocked, f"the page tried to reach outside: {bp.blocked}"
    bp.assert_healthy()
