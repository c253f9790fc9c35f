"""A user's string (a study or variant name, a description, a manifest value) as report Markdown shows it.

Such strings come from study files and from received study folders, so a report must never read
them as structure: a newline could start an image line (``![x](/etc/hostname)``), a ``|`` split a
table cell, a ``<`` open an HTML tag. Each is flattened to one line and its Markdown punctuation is
backslash-escaped; the page converter (``harness.report.html``) shows escaped characters literally.
"""

from __future__ import annotations

import re

# What could make a user's text into structure: code spans, emphasis, links and images, raw HTML,
# table cells, headings; and the backslash itself.
_SPECIAL = re.compile(r"([\\`*\[\]<>|#])")
_CELL = re.compile(r"(?<!\\)([|<>])|\](?=\()")


def one_line(text: object) -> str:
    """Any run of whitespace (newlines, tabs, line separators) as one space, ends trimmed."""
    return " ".join(str(text).split())


def plain(text: object) -> str:
    """A user's string as literal Markdown text on one line."""
    return _SPECIAL.sub(r"\\\1", one_line(text))


def code(text: object) -> str:
    """A user's string for inside a code span: one line, no backtick to end the span early."""
    return one_line(text).replace("`", "'")


def cell(text: object) -> str:
    """A table cell on one line: ``|``, ``<`` and ``>`` escaped, and ``](`` (which makes a link or an
    image of brackets) broken; numbers and intervals such as ``94.01 [93.99, 94.03]`` stay as they are."""
    return _CELL.sub(lambda m: "\\" + m.group(0), one_line(text))
