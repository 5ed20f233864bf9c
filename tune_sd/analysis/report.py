"""The HTML report: sections of paragraphs, inline tables, preformatted text and PNG figures that lie
beside ``report.html``. All text is escaped; the page needs no script and no network."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tune_sd import store

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
.scroll { max-width: 100%; overflow-x: auto; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
.note { color: #8a4b00; background: #fff6e5; padding: .5em .8em; border-left: 3px solid #e0a040; }
.muted { color: #666; font-size: .9em; }
"""


@dataclass
class Section:
    """A titled part of the report: ``blocks`` is a list of (kind, content) with kind in
    ``p`` (text), ``h3`` (text), ``table`` (DataFrame), ``pre`` (text), ``img`` ((file name, caption)),
    ``note`` (text), ``list`` (list of text)."""

    title: str
    blocks: list = field(default_factory=list)

    def p(self, text: str) -> "Section":
        self.blocks.append(("p", text))
        return self

    def h3(self, text: str) -> "Section":
        self.blocks.append(("h3", text))
        return self

    def table(self, df: pd.DataFrame, index: bool = False) -> "Section":
        self.blocks.append(("table", (df, index)))
        return self

    def pre(self, text: str) -> "Section":
        self.blocks.append(("pre", text))
        return self

    def img(self, file_name: str, caption: str = "") -> "Section":
        self.blocks.append(("img", (file_name, caption)))
        return self

    def note(self, text: str) -> "Section":
        self.blocks.append(("note", text))
        return self

    def items(self, lines: list[str]) -> "Section":
        self.blocks.append(("list", lines))
        return self


def cell(v) -> str:
    """A table cell as text: short floats, '-' for missing values."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or v is pd.NA:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def table_html(df: pd.DataFrame, index: bool = False) -> str:
    e = html.escape
    cols = ([e(str(df.index.name or ""))] if index else []) + [e(str(c)) for c in df.columns]
    out = ['<div class="scroll"><table>', "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for idx, row in df.iterrows():
        cells = ([f"<th>{e(cell(idx))}</th>"] if index else []) + [f"<td>{e(cell(v))}</td>" for v in row]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def render(title: str, sections: list[Section], intro: str = "") -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if intro:
        parts.append(f'<p class="muted">{e(intro)}</p>')
    if len(sections) > 1:
        parts.append("<ol>" + "".join(f'<li><a href="#s{i}">{e(s.title)}</a></li>' for i, s in enumerate(sections))
                     + "</ol>")
    for i, s in enumerate(sections):
        parts.append(f'<section id="s{i}"><h2>{e(s.title)}</h2>')
        for kind, content in s.blocks:
            if kind == "p":
                parts.append(f"<p>{e(content)}</p>")
            elif kind == "h3":
                parts.append(f"<h3>{e(content)}</h3>")
            elif kind == "table":
                parts.append(table_html(*content))
            elif kind == "pre":
                parts.append(f"<pre>{e(content)}</pre>")
            elif kind == "img":
                name, caption = content
                parts.append(f'<figure><img src="{e(name, quote=True)}" alt="{e(caption, quote=True)}">'
                             f"<figcaption class=\"muted\">{e(caption)}</figcaption></figure>")
            elif kind == "note":
                parts.append(f'<p class="note">{e(content)}</p>')
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in content) + "</ul>")
            else:
                raise ValueError(kind)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: list[Section], intro: str = "") -> Path:
    """Write the report atomically (temporary file + rename)."""
    text = render(title, sections, intro)
    return store.atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

