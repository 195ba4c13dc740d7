"""A static page on which a person reviews suspect labels: `noisy_labels.html`.

One HTML file with its data inline (no server, no network: it opens from
disk) and the images in a folder beside it, loaded a page at a time, so a
list of 10,000 suspects opens as fast as one of 50. Each row shows the
suspect's image, its given and most likely label (with the source's class
names), its scores and a few typical training images of both classes;
columns sort, a filter narrows by class, path or sample, and the state
(sort, page, filter) lives in the address's `#...` part, so a reload or a
shared link keeps it. Verdicts chosen on the page (keep, drop, relabel)
are kept in the browser's storage for that list and download as a CSV
that `data.verdicts` reads.

>>> html = review_page_html({"rank": [1], "sample": [7], "path": [""], "given_label": [0],
...                          "most_likely_label": [1], "clean_probability": [0.1],
...                          "neighbour_agreement": [0.5], "clean_score": [0.05]},
...                         examples={0: [3], 1: [4]}, class_names=["cat", "dog"],
...                         images="noisy_labels_images", image_suffix=".png",
...                         title="run", summary={"samples": 10}, list_id="abc")
>>> html.startswith("<!DOCTYPE html>") and '"class_names": ["cat", "dog"]' in html
True
"""

import json
import math
import re
from typing import Mapping, Optional, Sequence

COLUMNS = ("rank", "sample", "path", "given_label", "most_likely_label", "clean_probability",
           "neighbour_agreement", "clean_score")


def _json_value(value):
    """JSON has no NaN: an unscorable sample's score is null (shown as -)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def review_page_html(table: Mapping[str, Sequence], examples: Mapping[int, Sequence[int]],
                     class_names: Optional[Sequence[str]], images: str, image_suffix: str,
                     title: str, summary: Mapping[str, object], list_id: str) -> str:
    """The page's text. `table`: the columns `COLUMNS` (and `is_wrong`
    where the ground truth is known), one entry per suspect, most
    suspicious first; `examples` {label: samples} the typical training
    images shown beside each class; `class_names` [num_classes] or None;
    images are `images/<sample><image_suffix>`, relative to the page;
    `summary` the finder's counts and metrics, shown on top; `list_id`
    (the CSV's sha256) keys the verdicts kept in the browser, so those
    of another list never show."""
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise ValueError(f"review page: the table has no column {missing}")
    lengths = {len(values) for values in table.values()}
    if len(lengths) > 1:
        raise ValueError(f"review page: the table's columns differ in length: {sorted(lengths)}")
    data = {"title": title, "summary": dict(summary), "list_id": list_id,
            "images": images, "image_suffix": image_suffix,
            "class_names": None if class_names is None else [str(n) for n in class_names],
            "examples": {str(int(k)): [int(s) for s in v] for k, v in examples.items()},
            "columns": {k: [_json_value(v) for v in values] for k, values in table.items()}}
    # "<" escaped: a path holding "</script>" cannot end the data block.
    payload = json.dumps(data).replace("<", "\\u003c")
    fill = {"__TITLE__": _html_text(title), "__DATA__": payload}
    # One pass, so a title holding "__DATA__" stays text.
    return re.sub("__TITLE__|__DATA__", lambda match: fill[match.group()], _PAGE)


def _html_text(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Suspect labels: __TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
#summary, #legend { color: #555; margin: 2px 0; }
#controls { margin: 10px 0; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th.sortable { cursor: pointer; user-select: none; background: #f4f4f4; }
th.sorted { background: #dde8f5; }
td.num { font-variant-numeric: tabular-nums; }
img { image-rendering: pixelated; background: #eee; }
img.suspect { width: 96px; height: 96px; object-fit: contain; border: 4px solid #999; }
img.wrong { border-color: #e61919; }
img.right { border-color: #19cc19; }
img.example { width: 40px; height: 40px; object-fit: contain; margin: 1px; }
.label { font-weight: 600; }
.path { color: #666; font-size: 12px; word-break: break-all; }
.examples { margin-top: 3px; }
</style>
</head>
<body>
<h1>Suspect labels: __TITLE__</h1>
<p id="summary"></p>
<p id="legend"></p>
<div id="controls">
  <label>Filter <input id="filter" type="search" placeholder="class, path or sample"></label>
  <label>Rows <select id="size"><option>25</option><option selected>50</option>
    <option>100</option><option>500</option></select></label>
  <button id="previous">&larr; previous</button>
  <span id="position"></span>
  <button id="next">next &rarr;</button>
  <button id="download">Download verdicts CSV</button>
  <span id="verdict-count"></span>
</div>
<table>
  <thead><tr id="header"></tr></thead>
  <tbody id="rows"></tbody>
</table>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const cols = data.columns;
const count = cols.rank.length;
const known = "is_wrong" in cols;
const HEADERS = [
  ["rank", "Rank"], [null, "Image"], ["sample", "Sample"], ["given_label", "Given label"],
  ["most_likely_label", "Most likely label"], ["clean_probability", "Clean probability"],
  ["neighbour_agreement", "Neighbour agreement"], ["clean_score", "Clean score"],
].concat(known ? [["is_wrong", "Wrong (ground truth)"]] : []).concat([[null, "Verdict"]]);
const DEFAULTS = {sort: "rank", descending: false, page: 1, size: 50, filter: ""};
const state = {...DEFAULTS};
const storageKey = "prism-tf-verdicts:" + data.list_id;
let verdicts = {};
try { verdicts = JSON.parse(localStorage.getItem(storageKey) || "{}"); } catch (e) {}

function className(label) {
  return data.class_names ? label + " \\u00b7 " + data.class_names[label] : String(label);
}
function number(value) { return value === null ? "-" : value.toPrecision(4); }
function readAddress() {
  Object.assign(state, DEFAULTS);
  for (const part of location.hash.slice(1).split("&")) {
    const [key, value] = part.split("=").map(decodeURIComponent);
    if (key === "sort") {
      state.descending = value.startsWith("-");
      const column = state.descending ? value.slice(1) : value;
      if (column in cols) state.sort = column;
    } else if (key === "page" && +value >= 1) state.page = Math.floor(+value);
    else if (key === "size" && +value >= 1) state.size = Math.floor(+value);
    else if (key === "filter") state.filter = value;
  }
}
function writeAddress() {
  const hash = "#sort=" + (state.descending ? "-" : "") + state.sort + "&page=" + state.page +
    "&size=" + state.size + (state.filter ? "&filter=" + encodeURIComponent(state.filter) : "");
  history.replaceState(null, "", hash);
}
function matches(i, phrase) {
  return [className(cols.given_label[i]), className(cols.most_likely_label[i]), cols.path[i],
          "sample " + cols.sample[i]].some(text => text.toLowerCase().includes(phrase));
}
function shownRows() {
  const phrase = state.filter.trim().toLowerCase();
  const rows = [];
  for (let i = 0; i < count; i++) if (!phrase || matches(i, phrase)) rows.push(i);
  const key = cols[state.sort], sign = state.descending ? -1 : 1;
  // Unscorable (null) last either way; ties keep the list's order.
  rows.sort((a, b) => {
    const x = key[a], y = key[b];
    if (x === null || y === null) return (x === null) - (y === null) || a - b;
    return x < y ? -sign : x > y ? sign : a - b;
  });
  return rows;
}
function image(sample, kind) {
  const element = document.createElement("img");
  element.src = data.images + "/" + sample + data.image_suffix;
  element.loading = "lazy";
  element.alt = "sample " + sample;
  element.title = "sample " + sample;
  element.className = kind;
  return element;
}
function cell(row, text, kind) {
  const element = row.insertCell();
  if (text !== undefined) element.textContent = text;
  if (kind) element.className = kind;
  return element;
}
function labelCell(row, label) {
  const element = cell(row);
  const name = document.createElement("div");
  name.className = "label";
  name.textContent = className(label);
  element.appendChild(name);
  const strip = document.createElement("div");
  strip.className = "examples";
  for (const sample of data.examples[label] || []) strip.appendChild(image(sample, "example"));
  element.appendChild(strip);
}
function verdictCell(row, i) {
  const sample = cols.sample[i];
  const element = cell(row);
  const choice = document.createElement("select");
  for (const option of ["", "keep", "drop", "relabel"]) choice.add(new Option(option || "-", option));
  const newLabel = document.createElement("input");
  newLabel.type = "number"; newLabel.min = 0; newLabel.style.width = "5em";
  const saved = verdicts[sample];
  choice.value = saved ? saved.verdict : "";
  newLabel.value = saved && saved.new_label !== "" ? saved.new_label : cols.most_likely_label[i];
  newLabel.hidden = choice.value !== "relabel";
  const save = () => {
    newLabel.hidden = choice.value !== "relabel";
    if (choice.value) verdicts[sample] = {verdict: choice.value,
      new_label: choice.value === "relabel" ? newLabel.value : ""};
    else delete verdicts[sample];
    try { localStorage.setItem(storageKey, JSON.stringify(verdicts)); } catch (e) {}
    showVerdictCount();
  };
  choice.onchange = save; newLabel.onchange = save;
  element.append(choice, " ", newLabel);
}
function showVerdictCount() {
  document.getElementById("verdict-count").textContent =
    Object.keys(verdicts).length + " verdict(s) on this list";
}
function render() {
  const rows = shownRows();
  const pages = Math.max(1, Math.ceil(rows.length / state.size));
  state.page = Math.min(state.page, pages);
  writeAddress();
  const header = document.getElementById("header");
  header.replaceChildren();
  for (const [key, title] of HEADERS) {
    const th = document.createElement("th");
    th.textContent = title + (key === state.sort ? (state.descending ? " \\u25bc" : " \\u25b2") : "");
    if (key) {
      th.className = "sortable" + (key === state.sort ? " sorted" : "");
      th.dataset.column = key;
      th.onclick = () => {
        state.descending = key === state.sort ? !state.descending : false;
        state.sort = key; state.page = 1; render();
      };
    }
    header.appendChild(th);
  }
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const i of rows.slice((state.page - 1) * state.size, state.page * state.size)) {
    const row = body.insertRow();
    row.dataset.sample = cols.sample[i];
    cell(row, cols.rank[i], "num");
    const wrong = known ? cols.is_wrong[i] : null;
    cell(row).appendChild(image(cols.sample[i],
      "suspect" + (wrong === null ? "" : wrong ? " wrong" : " right")));
    const where = cell(row, "sample " + cols.sample[i]);
    if (cols.path[i]) {
      const path = document.createElement("div");
      path.className = "path"; path.textContent = cols.path[i];
      where.appendChild(path);
    }
    labelCell(row, cols.given_label[i]);
    labelCell(row, cols.most_likely_label[i]);
    for (const key of ["clean_probability", "neighbour_agreement", "clean_score"])
      cell(row, number(cols[key][i]), "num");
    if (known) cell(row, wrong ? "wrong" : "right");
    verdictCell(row, i);
  }
  document.getElementById("position").textContent =
    "page " + state.page + " of " + pages + " (" + rows.length + " of " + count + " suspects)";
  document.getElementById("previous").disabled = state.page <= 1;
  document.getElementById("next").disabled = state.page >= pages;
}
function csvField(value) {
  const text = String(value);
  return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
function verdictsCsv() {
  const lines = ["sample,path,given_label,verdict,new_label"];
  for (let i = 0; i < count; i++) {
    const saved = verdicts[cols.sample[i]];
    if (saved) lines.push([cols.sample[i], cols.path[i], cols.given_label[i], saved.verdict,
                           saved.new_label].map(csvField).join(","));
  }
  return lines.join("\\n") + "\\n";
}

const summary = data.summary;
document.getElementById("summary").textContent = count + " most suspicious of " +
  summary.samples + " training samples, most suspicious first (noisy_labels.csv ranks)" +
  (summary.roc_auc !== undefined ? "; ROC AUC " + summary.roc_auc.toFixed(3) +
   ", average precision " + summary.average_precision.toFixed(3) : "") + ".";
document.getElementById("legend").textContent =
  (known ? "Frame: red = the label is wrong, green = right (ground truth). "
         : "Frame: grey (no ground truth for these labels). ") +
  "Beside each label: typical training images of that class. Verdicts are kept in this " +
  "browser; download them and train with --config.data.verdicts=<the CSV>.";
const size = document.getElementById("size");
function showAddress() {
  readAddress();
  document.getElementById("filter").value = state.filter;
  if (![...size.options].some(o => +o.value === state.size)) size.add(new Option(state.size));
  size.value = String(state.size);
  render();
}
// An address edited by hand, or back and forward, shows what it says.
window.addEventListener("hashchange", showAddress);
document.getElementById("filter").oninput = e => { state.filter = e.target.value; state.page = 1; render(); };
size.onchange = e => { state.size = +e.target.value; state.page = 1; render(); };
document.getElementById("previous").onclick = () => { state.page--; render(); };
document.getElementById("next").onclick = () => { state.page++; render(); };
document.getElementById("download").onclick = () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([verdictsCsv()], {type: "text/csv"}));
  link.download = "noisy_labels_verdicts.csv";
  link.click();
};
showVerdictCount();
showAddress();
</script>
</body>
</html>
"""
