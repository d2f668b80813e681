"""``shoeseg remove DIR -o OUT --report``: ``OUT/index.html``, a self-contained page to check a folder's cutouts.

Counts at the top, then every photo beside its cutout on a checkerboard and on the backdrop, least confident
first, the ones under the low-confidence flag marked; a click opens the full-size pair (CSS ``:target``, no
script needed for it). No network: styles inline, images referenced relative to ``OUT`` (the photos are copied
into ``OUT/report/photos``). One inline script counts the images that loaded (``body[data-loaded]``).
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass
from pathlib import Path

REPORT_FILE = "index.html"
PHOTO_DIR = Path("report") / "photos"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }
header { margin-bottom: 16px; } .counts span { margin-right: 16px; font-weight: 600; }
.entry { display: inline-block; vertical-align: top; margin: 6px; padding: 6px; background: #fff;
         border: 2px solid #ddd; border-radius: 6px; width: 480px; color: inherit; text-decoration: none; }
.entry.flagged { border-color: #d33; } .entry .label { font-size: 13px; margin-bottom: 4px; }
.flag { color: #d33; font-weight: 700; }
.tiles { display: flex; gap: 4px; } .tiles img { width: 156px; height: 156px; object-fit: contain; }
.checker { background: repeating-conic-gradient(#ccc 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.full { display: none; position: fixed; inset: 0; background: rgba(0, 0, 0, .85); padding: 24px;
        overflow: auto; } .full:target { display: block; }
.full img { max-width: 48%; max-height: 90vh; object-fit: contain; vertical-align: top; }
.full a { color: #fff; display: block; margin-bottom: 8px; }
"""
LOADED_SCRIPT = """
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = images.length;
});
"""


@dataclass(frozen=True)
class ReviewEntry:
    """One photo of the run: where it came from, its cutout, and the cutout's confidence (None: not redone
    this run, so unknown)."""

    source: Path
    target: Path
    confidence: float | None


def review_order(entries: list[ReviewEntry]) -> list[ReviewEntry]:
    """Least confident first; entries of unknown confidence last, by name."""
    return sorted(entries, key=lambda e: (e.confidence is None, e.confidence or 0.0, str(e.target)))


def _entry_html(index: int, entry: ReviewEntry, photo: str, cutout: str, backdrop: str, low: float) -> str:
    flagged = entry.confidence is not None and entry.confidence < low
    confidence = "unknown (not redone)" if entry.confidence is None else f"{entry.confidence:.3f}"
    name = html.escape(entry.target.name)
    flag = ' <span class="flag">CHECK</span>' if flagged else ""
    return (
        f'<a class="entry{" flagged" if flagged else ""}" href="#full-{index}" data-confidence="{confidence}">'
        f'<div class="label">{index + 1}. {name} - confidence {confidence}{flag}</div><div class="tiles">'
        f'<img src="{photo}" alt="photo {name}"><img class="checker" src="{cutout}" alt="cutout {name}">'
        f'<img style="background:{backdrop}" src="{cutout}" alt="cutout on the backdrop {name}"></div></a>'
        f'<div class="full" id="full-{index}"><a href="#">close ({name})</a>'
        f'<img src="{photo}" alt="full photo"> <img class="checker" src="{cutout}" alt="full cutout"></div>'
    )


def write_review_page(
    entries: list[ReviewEntry], source_root: Path, out: Path, low_confidence: float, backdrop: str = "#ffffff"
) -> Path:
    """Copy each photo under ``out/report/photos`` and write ``out/index.html``; returns its path.

    ``backdrop``: the CSS colour the second tile shows the cutout on (the request's ``bg``, else white)."""
    ordered = review_order(entries)
    parts = []
    for index, entry in enumerate(ordered):
        relative = entry.source.relative_to(source_root) if entry.source != source_root else Path(entry.source.name)
        photo = PHOTO_DIR / relative
        (out / photo).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.source, out / photo)
        cutout = entry.target.relative_to(out)
        parts.append(_entry_html(index, entry, photo.as_posix(), cutout.as_posix(), backdrop, low_confidence))
    flagged = sum(e.confidence is not None and e.confidence < low_confidence for e in entries)
    unknown = sum(e.confidence is None for e in entries)
    counts = (
        f'<div class="counts"><span>{len(entries)} photos</span><span>{flagged} to check (confidence &lt; '
        f"{low_confidence})</span><span>{unknown} not redone</span></div>"
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ShoeSeg review: {len(entries)} '
        f"cutouts</title><style>{STYLE}</style></head><body><header><h1>Cutouts to review</h1>{counts}"
        f"<p>Least confident first; click a pair to see it at full size.</p></header><main>{''.join(parts)}</main>"
        f"<script>{LOADED_SCRIPT}</script></body></html>"
    )
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
