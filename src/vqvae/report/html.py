"""The report page: one self-contained HTML file with inline CSS and a tiny inline script.

No network resources (no CDN, no web fonts): the page is read offline, from a run folder
copied off a server. Images are PNGs beside ``index.html``, named by relative paths.
Every piece of text from the run (config values, data paths) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CSS = """
:root { --ink: #1d232a; --muted: #5f6b76; --line: #dde2e7; --bg: #f5f7f9; --card: #fff;
        --accent: #1f77b4; --warn-bg: #fff4e5; --warn: #8a4b00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
             sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 64px; }
header h1 { margin: 0 0 2px; font-size: 26px; }
header .sub { color: var(--muted); margin: 0 0 18px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: 13px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
         gap: 10px; margin: 0 0 18px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 12px; }
.stat .v { font-size: 22px; font-weight: 600; }
.stat .k { color: var(--muted); font-size: 12px; text-transform: uppercase;
           letter-spacing: .04em; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 800px) { .cols { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; background: var(--card);
        border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { color: var(--muted); font-weight: 500; width: 40%; }
tr:last-child th, tr:last-child td { border-bottom: 0; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 16px 20px 18px; margin: 18px 0; }
section h2 { margin: 0 0 4px; font-size: 19px; }
section p.lead { color: var(--muted); margin: 0 0 12px; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; text-align: center; }
.note { background: var(--warn-bg); color: var(--warn); border-left: 4px solid #f0a020;
        padding: 8px 12px; border-radius: 4px; margin: 8px 0; }
nav { margin: 0 0 8px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
table.players { table-layout: fixed; }
table.players th { width: auto; }
table.players th:first-child { width: 19%; }
table.players td { word-break: break-all; }
audio { display: block; width: 100%; min-width: 0; }
.clips { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
         gap: 10px 16px; }
"""

# On load, count the images the browser could decode and record it on <body>, so a headless
# browser (the tests) and a reader both see a broken picture: the reader as a visible warning.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", String(ok.length));
  document.body.setAttribute("data-images-total", String(imgs.length));
  imgs.forEach(function (i) {
    if (i.complete && i.naturalWidth > 0) { return; }
    var p = document.createElement("p");
    p.className = "note broken-image";
    p.textContent = "Missing image: " + i.getAttribute("src") +
      " (was the report folder copied without its PNG files?)";
    i.parentNode.insertBefore(p, i);
  });
  // audio players: how many have loaded a clip longer than zero seconds
  var clips = Array.prototype.slice.call(document.querySelectorAll("audio"));
  document.body.setAttribute("data-audio-total", String(clips.length));
  var count = function () {
    var ready = clips.filter(function (a) { return a.readyState >= 1 && a.duration > 0; });
    document.body.setAttribute("data-audio-loaded", String(ready.length));
  };
  clips.forEach(function (a) {
    a.addEventListener("loadedmetadata", count);
    a.addEventListener("error", count);
    if (a.readyState < 1) { a.load(); }
  });
  count();
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Section:
    """One titled card on the page; ``body`` is HTML built with the helpers below."""

    anchor: str
    title: str
    lead: str
    body: str


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def guarded(anchor: str, title: str, draw: Callable[..., tuple[str, str]], *args: Any) -> Section:
    """The section ``draw(*args)`` returns as ``(lead, body html)``; an unexpected error becomes
    a note in its place, and the rest of the page still renders."""
    try:
        lead, body = draw(*args)
    except Exception as e:  # noqa: BLE001
        lead, body = "", note(f"This part could not be drawn: {type(e).__name__}: {one_line(e)}")
    return Section(anchor, title, lead, body)


def figure(src: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}" loading="eager">{cap}</figure>'


def audio(src: str, caption: str = "") -> str:
    """An audio player for a WAV beside the page."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="clip"><audio controls preload="auto" src="{esc(src)}"></audio>'
        f"{cap}</figure>"
    )


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def table(rows: Iterable[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def stats(items: Iterable[tuple[str, str]]) -> str:
    cards = "".join(
        f'<div class="stat"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for k, v in items
    )
    return f'<div class="stats">{cards}</div>'


def run_header(
    left: Iterable[tuple[str, object]],
    right: Iterable[tuple[str, object]],
    cards: Sequence[tuple[str, str]],
    step: object = None,
) -> str:
    """Two tables side by side (the model, the training), then the held-out numbers of
    ``step`` as cards, or a note that there are none yet."""
    head = stats(cards) if cards else note("No held-out evaluation in metrics.jsonl yet.")
    if step is not None and cards:
        head = f'<p class="sub">Final held-out metrics (step {esc(step)}):</p>' + head
    return (
        f'<div class="cols"><div>{table(left)}</div><div>{table(right)}</div></div>'
        f'<div style="height:14px"></div>{head}'
    )


def page(
    title: str,
    subtitle: str,
    header_html: str,
    sections: Sequence[Section],
    footer: str,
) -> str:
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    cards = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>'
        + (f'<p class="lead">{esc(s.lead)}</p>' if s.lead else "")
        + f"{s.body}</section>\n"
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{SCRIPT}</script></head>\n"
        f"<body><main><header><h1>{esc(title)}</h1>"
        f'<p class="sub">{esc(subtitle)}</p>{header_html}</header>\n'
        f"<nav>{nav}</nav>\n{cards}"
        f"<footer>{esc(footer)}</footer></main></body></html>\n"
    )
