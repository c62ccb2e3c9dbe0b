"""The page shell: doctype, inline CSS, the click-to-sort script, and a Content-Security-Policy that forbids every
network load (images only from ``data:`` URIs), so the file is provably self-contained in any browser."""
from __future__ import annotations

from ._html import esc

# Blocks every fetch (scripts, styles, images, fonts, frames) except the inline ones and data: images.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto;
       max-width: 1200px; padding: 1.5em; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.meta, .caption, .small { color: #555; font-size: .9em; }
.reading { font-size: 1.1em; margin: .4em 0 1em; padding: .6em .9em; background: #f3f6fb;
           border-left: 4px solid #3a6fb0; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.js table.sortable th { cursor: pointer; user-select: none; }
.js table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
.js table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
.scroll { overflow-x: auto; max-height: 40em; overflow-y: auto; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
code { font-size: .9em; }
.note { white-space: pre-wrap; }
"""

# Click a header of a table.sortable to sort by that column (again to reverse). Columns with data-kind="num" sort
# numerically, NaN and empty cells last; others by locale text. The "js" class on <html> tells the CSS (and
# anyone reading the DOM) that the script ran.
_JS = """
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function key(cell, numeric) {
    var text = cell ? cell.textContent.trim() : "";
    if (!numeric) { return text; }
    var value = parseFloat(text);
    return isNaN(value) ? null : value;
  }
  function compare(a, b, numeric) {
    if (!numeric) { return a.localeCompare(b, undefined, {numeric: true}); }
    if (a === null || b === null) { return (a === null) - (b === null); }
    return a - b;
  }
  function sortBy(table, header, column) {
    var numeric = header.getAttribute("data-kind") === "num";
    var descending = header.getAttribute("aria-sort") === "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return {row: row, index: index, key: key(row.cells[column], numeric)};
    });
    rows.sort(function (a, b) {
      var missing = numeric && (a.key === null || b.key === null);
      var order = compare(a.key, b.key, numeric);
      if (descending && !missing) { order = -order; }
      return order || a.index - b.index;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(header.parentNode.cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, column) {
      header.title = "click to sort";
      header.addEventListener("click", function () { sortBy(table, header, column); });
    });
  });
})();
"""


def page(title: str, body: str) -> str:
    """A complete HTML5 document: ``title`` (escaped) and ``body`` (HTML, already escaped by its builders)."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
            f"<script>{_JS}</script>\n</body>\n</html>\n")
