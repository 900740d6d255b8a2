"""The report's PDF: the HTML page printed by headless Chromium.

Why Chromium: the page is already HTML with inline SVG, and Chromium prints it exactly as a
browser shows it, with no second layout engine to keep in step (WeasyPrint would need Pango
from Debian and renders SVG its own way). The repository installs Chromium anyway
(scripts/bootstrap.sh, for the console's browser tests), and it runs from the command line with
no Python dependency: `chromium --headless --print-to-pdf`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from railpulse_archiver.errors import PdfError

__all__ = ["CHROMIUM_NAMES", "find_chromium", "print_pdf"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_TIMEOUT_S = 60.0


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfError(
        "no Chromium to print the PDF with (looked for " + ", ".join(CHROMIUM_NAMES) + ")"
    )


def print_pdf(html: Path, pdf: Path, *, chromium: str | None = None) -> None:
    """Print the page `html` to `pdf` (A4, no header or footer), or raise `PdfError`."""
    browser = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="railpulse-pdf-") as profile:
        out = Path(profile) / "out.pdf"
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # root in containers; the page is our own file, no script in it
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={out}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdfError(f"Chromium did not print the PDF: {exc}") from exc
        if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PdfError(f"Chromium did not print the PDF (exit {done.returncode}): {tail}")
        shutil.move(out, pdf)
