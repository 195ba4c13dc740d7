"""The review page (`prism_tf.review_page`) as a person's browser shows it.
The finder's own page, from a trained run, is tested in test_label_issues."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from prism_tf.review_page import review_page_html
from tests import browser

SUSPECTS = 10_000
# Whether every image the CSS selector finds has loaded and decoded.
LOADED = ("selector => [...document.querySelectorAll(selector)]"
          ".every(image => image.complete && image.naturalWidth > 0)")


def _table(count: int, num_classes: int, rng) -> dict:
    scores = np.sort(rng.random(count))
    given = rng.integers(0, num_classes, count)
    return {"rank": list(range(1, count + 1)), "sample": (np.arange(count) * 3).tolist(),
            "path": [f"photos/{i}.jpg" for i in range(count)],
            "given_label": given.tolist(),
            "most_likely_label": ((given + 1) % num_classes).tolist(),
            "clean_probability": scores.tolist(), "neighbour_agreement": [1.0] * count,
            "clean_score": scores.tolist(), "is_wrong": (np.arange(count) % 2).tolist()}


def _write_page(folder, table, class_names, title="a run"):
    """The page and one image per suspect, as the finder lays them out."""
    images = folder / "noisy_labels_images"
    images.mkdir()
    png = tf.io.encode_png(tf.fill([8, 8, 1], tf.constant(128, tf.uint8))).numpy()
    for sample in table["sample"]:
        (images / f"{sample}.png").write_bytes(png)
    examples = {c: table["sample"][:2] for c in range(len(class_names))}
    html = review_page_html(table, examples, class_names, images.name, ".png", title,
                            summary={"samples": 40_000, "roc_auc": 0.9, "average_precision": 0.8},
                            list_id="test-list")
    (folder / "noisy_labels.html").write_text(html)
    return folder / "noisy_labels.html"


def test_the_page_holds_its_data_and_refuses_a_ragged_table():
    table = _table(3, 2, np.random.default_rng(0))
    table["path"][0] = "a/</script><script>alert(1)</script>.jpg"
    html = review_page_html(table, {}, None, "images", ".png", "t</title>", {"samples": 3}, "x")
    # The path cannot end the data block, nor the title the title.
    assert html.count("</script>") == 2 and "<title>Suspect labels: t&lt;/title&gt;</title>" in html
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    data = json.loads(block.group(1))
    assert data["columns"]["path"][0] == table["path"][0]
    assert data["columns"]["clean_score"] == table["clean_score"]
    with pytest.raises(ValueError, match=r"no column \['clean_score'\]"):
        review_page_html({k: v for k, v in table.items() if k != "clean_score"}, {}, None,
                         "images", ".png", "t", {}, "x")
    table["rank"].append(4)
    with pytest.raises(ValueError, match=r"columns differ in length: \[3, 4\]"):
        review_page_html(table, {}, None, "images", ".png", "t", {}, "x")


def test_ten_thousand_suspects_open_page_by_page_with_their_class_names(tmp_path):
    names = [f"class {c}" for c in range(7)]
    table = _table(SUSPECTS, len(names), np.random.default_rng(1))
    table["path"][0] = "odd/</script><b>bold</b>.jpg"
    page_file = _write_page(tmp_path, table, names)
    with browser.chromium_page() as (page, errors):
        page.goto(page_file.as_uri())
        assert page.text_content("#position") == (
            f"page 1 of {SUSPECTS // 50} ({SUSPECTS} of {SUSPECTS} suspects)")
        first = page.locator("#rows tr").first
        assert first.get_attribute("data-sample") == "0"
        labels = first.locator(".label").all_text_contents()
        given, likely = table["given_label"][0], table["most_likely_label"][0]
        assert labels == [f"{given} \u00b7 class {given}", f"{likely} \u00b7 class {likely}"]
        assert first.locator(".path").text_content() == table["path"][0]   # text, not markup
        assert page.locator("#rows b").count() == 0
        assert "ROC AUC 0.900" in page.text_content("#summary")
        # The last page, from the address; then the filter, on class names.
        page.goto(page_file.as_uri() + f"#page={SUSPECTS // 50}")
        ranks = page.locator("#rows tr td:first-child").all_text_contents()
        assert ranks == [str(r) for r in range(SUSPECTS - 49, SUSPECTS + 1)]
        page.fill("#filter", "class 3")
        shown = sum(1 for g, b in zip(table["given_label"], table["most_likely_label"])
                    if 3 in (g, b))
        assert page.text_content("#position").endswith(f"({shown} of {SUSPECTS} suspects)")
        assert "page=1" in page.url and "filter=class%203" in page.url
        # Images load as they come into view (loading=lazy), page by page.
        page.wait_for_function(LOADED, arg="#rows tr:nth-child(-n+5) img")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(LOADED, arg="#rows tr:last-child img")
        assert errors == []


def test_a_missing_image_is_reported_and_a_cancelled_load_is_not(tmp_path):
    table = _table(4, 3, np.random.default_rng(2))
    page_file = _write_page(tmp_path, table, ["a", "b", "c"])
    missing = tmp_path / "noisy_labels_images" / f"{table['sample'][2]}.png"
    missing.unlink()
    with browser.chromium_page() as (page, errors):
        # A load the page gives up (as when it navigates mid-load) is no error.
        cancelled = []
        page.on("requestfailed", lambda request: cancelled.append(request.failure))
        page.route(f"**/{table['sample'][0]}.png", lambda route: route.abort("aborted"))
        page.goto(page_file.as_uri())
        page.wait_for_function("[...document.images].every(image => image.complete)")
        assert "net::ERR_ABORTED" in cancelled
        assert sorted(set(errors)) == [
            "console: Failed to load resource: net::ERR_FILE_NOT_FOUND",
            f"request failed: {missing.as_uri()} (net::ERR_FILE_NOT_FOUND)"]
