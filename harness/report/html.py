"""``report.html`` beside ``report.md``: the same page for a browser, self-contained.

Figures are inlined as base64 PNGs (with their numbered captions): only PNG files (by their first
bytes) inside the study's ``figures/`` folder, since a page meant to be shared must never carry a
copy of any other file a figure line might name (``![x](/etc/hostname)``). Every table is sortable by a click
on its header (a few lines of vanilla JavaScript, no library, nothing fetched), and a provenance box
names the data, method versions, seeds and store. The markdown this converts is the harness's own
(headings, paragraphs, lists, tables, figures, code blocks, bold, italics and code spans), so a small
converter suffices.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}tr:nth-child(even) td{background:#fafafa}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444;margin-top:.4em}code{background:#f4f4f4;padding:0 3px}
pre{background:#f4f4f4;padding:.8em;overflow-x:auto}.provenance{background:#f6f8fa;border:1px solid #ddd;padding:.6em 1em}
"""

SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, _) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var key = function (row) {
      var text = row.cells[col].textContent.trim(), num = parseFloat(text.replace(/[^0-9eE+.\\-−]/g, "").replace("−", "-"));
      return isNaN(num) ? text.toLowerCase() : num;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return asc ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash-escaped ASCII punctuation character
HELD = re.compile("\ue000(\\d+)\ue001")


def inline(text: str) -> str:
    """Bold, italics and code spans of one line, HTML-escaped; a backslash-escaped character
    (``harness.stats.text.plain``) is shown as itself, never as markup."""
    held: list[str] = []

    def hold(m: re.Match) -> str:
        held.append(m.group(1))
        return f"\ue000{len(held) - 1}\ue001"

    parts = re.split(r"(`[^`]*`)", ESCAPED.sub(hold, text))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        out.append(part)
    return HELD.sub(lambda m: html.escape(held[int(m.group(1))]), "".join(out))


def figure_file(folder: Path, path: str) -> Path | None:
    """The file a figure line names, when it may be inlined: it resolves (links followed) to a
    regular file inside ``folder/figures`` and starts with PNG's signature; None otherwise."""
    figures = (folder / "figures").resolve()
    try:
        file = (folder / path).resolve()
        if not (file.is_relative_to(figures) and file.is_file()):
            return None
        with open(file, "rb") as f:
            return file if f.read(len(PNG_MAGIC)) == PNG_MAGIC else None
    except (OSError, ValueError):  # unreadable, a name the system refuses (a NUL byte, too long)
        return None


def _image(folder: Path, path: str) -> str:
    """A figure as a data URI; "" for a missing figure (the page says so, not silently dropped) and
    for anything :func:`figure_file` refuses."""
    file = figure_file(folder, path)
    if file is None:
        return ""
    try:
        return "data:image/png;base64," + base64.b64encode(file.read_bytes()).decode("ascii")
    except OSError:
        return ""


def _table(lines: list[str]) -> str:
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))] for line in lines]
    head, rows = cells[0], cells[2:]
    th = "".join(f'<th scope="col">{inline(c)}</th>' for c in head)
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="sortable"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def to_html(markdown: str, folder: Path) -> str:
    """The body of the page: the report's markdown as HTML, figures inlined from ``folder``."""
    lines, out, i = markdown.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
        elif m := re.match(r"(#{1,6}) (.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif m := re.match(r"!\[([^\]]*)\]\(([^)]+)\)\s*$", line):
            alt, path = m.groups()
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            caption = ""
            if j < len(lines) and lines[j].startswith("*Figure"):
                caption, i = lines[j].strip().strip("*"), j + 1
            else:
                i += 1
            src = _image(folder, path)
            img = (
                f'<img src="{src}" alt="{html.escape(alt)}">'
                if src
                else f"<p><em>figure {html.escape(path)} is missing or not a PNG under figures/</em></p>"
            )
            out.append(f"<figure>{img}<figcaption>{inline(caption)}</figcaption></figure>")
        elif re.match(r"\s*- ", line):
            j, items = i, []
            while j < len(lines) and re.match(r"\s*- |\s{2,}\S", lines[j]):
                text = lines[j].strip()
                if text.startswith("- "):
                    items.append(text[2:])
                elif items:
                    items[-1] += " " + text
                j += 1
            out.append("<ul>" + "".join(f"<li>{inline(t)}</li>" for t in items) + "</ul>")
            i = j
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(r"(#|\||!\[|```|\s*- )", lines[j]):
                j += 1
            out.append("<p>" + inline(" ".join(lines[i:j])) + "</p>")
            i = max(j, i + 1)
    return "\n".join(out)


def provenance(items: dict[str, str]) -> str:
    rows = "".join(f"<li><strong>{html.escape(k)}:</strong> {inline(v)}</li>" for k, v in items.items() if v)
    return f'<section class="provenance"><h2>Provenance</h2><ul>{rows}</ul></section>'


def page(title: str, markdown: str, folder: Path, facts: dict[str, str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{to_html(markdown, folder)}\n{provenance(facts)}\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
