"""No page may load anything from outside the app (the app runs on a government intranet): no template, no
stylesheet and no Python source names an outside address for a script, a stylesheet, a font or an image."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["templates", "static", "governance", "grids", "points", "mailbox", "config"]
# src="…", href="…" (stylesheets, icons, fonts), url(…) in CSS, @import, and the common CDNs by name.
OUTSIDE = re.compile(
    r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?(?:https?:)?//"""
    r"""|cdn\.|jsdelivr|unpkg|googleapis|gstatic|bootcdn|staticfile\.org|cdnjs""",
    re.IGNORECASE,
)


def test_no_template_stylesheet_or_source_loads_an_outside_asset():
    found = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".html", ".css", ".js", ".py", ".txt"} or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
