"""Render Mermaid diagrams with the real Mermaid library in headless Chromium, as a Markdown viewer would.

`make test-render-deps` installs both: Debian's `chromium` and the pinned npm `mermaid` under `.cache/mermaid`.
Each diagram is rendered by `mermaid.render` on one page; the page records, per diagram, either the SVG or
Mermaid's error, and Chromium prints the page. A screenshot of the page is kept for a person to look at.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MERMAID_JS = REPO / ".cache" / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM = Path("/usr/bin/chromium")
# The machine has no network: nothing Chromium would fetch on its own is wanted.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>body {{ background: #fff; font-family: sans-serif; }}
.chart {{ width: 760px; margin: 8px; border: 1px solid #ddd; }}</style>
<script src="{script}"></script></head>
<body>{blocks}
<script>
const diagrams = {diagrams};
mermaid.initialize({{ startOnLoad: false, theme: "default" }});
(async () => {{
  const results = [];
  for (let i = 0; i < diagrams.length; i++) {{
    try {{
      const {{ svg }} = await mermaid.render("chart" + i, diagrams[i]);
      document.getElementById("slot" + i).innerHTML = svg;
      results.push({{ ok: true, svg: svg }});
    }} catch (error) {{
      results.push({{ ok: false, error: String(error && error.message || error) }});
    }}
  }}
  const out = document.createElement("pre");
  out.id = "results";
  out.textContent = "MERMAID-RESULTS " + JSON.stringify(results) + " END";
  document.body.appendChild(out);
}})();
</script></body></html>
"""


@dataclass(frozen=True)
class Rendered:
    """What Mermaid made of one diagram: its SVG, or its error."""

    ok: bool
    svg: str = ""
    error: str = ""


def mermaid_blocks(markdown: str) -> list[str]:
    """The text of every fenced `mermaid` block of `markdown`."""
    return re.findall(r"```mermaid\n(.*?)\n```", markdown, flags=re.DOTALL)


def render(diagrams: list[str], workdir: Path) -> list[Rendered]:
    """Render `diagrams` on one page in `workdir` (which keeps page.html and screenshot.png)."""
    if not MERMAID_JS.is_file():
        raise AssertionError(f"{MERMAID_JS} is missing: run `make test-render-deps`")
    if not CHROMIUM.is_file():
        raise AssertionError(f"{CHROMIUM} is missing: run `make test-render-deps`")
    blocks = "".join(f'<div class="chart" id="slot{i}"></div>' for i in range(len(diagrams)))
    page = workdir / "page.html"
    page.write_text(
        _PAGE.format(script=html.escape(MERMAID_JS.as_uri()), blocks=blocks, diagrams=json.dumps(diagrams)),
        encoding="utf-8",
    )
    height = 80 + 520 * len(diagrams)
    common = [str(CHROMIUM), *CHROMIUM_FLAGS, "--allow-file-access-from-files", "--virtual-time-budget=20000"]
    dom = _chromium([*common, f"--user-data-dir={workdir / 'profile-dom'}", "--dump-dom", page.as_uri()])
    _chromium(
        [
            *common,
            f"--user-data-dir={workdir / 'profile-shot'}",
            f"--window-size=800,{height}",
            f"--screenshot={workdir / 'screenshot.png'}",
            page.as_uri(),
        ]
    )
    found = re.search(r"<pre id=\"results\">MERMAID-RESULTS (.*?) END</pre>", dom, flags=re.DOTALL)
    if found is None:
        raise AssertionError(f"the page never finished rendering; see {page}")
    return [Rendered(**result) for result in json.loads(html.unescape(found.group(1)))]


def _chromium(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout
