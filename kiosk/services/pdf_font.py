"""The font PDFs are printed with, apart from fpdf itself (a heavy import) so callers can name its error.

A Unicode TrueType font is required: a printed name must print as entered,
so we refuse to fall back to a Latin-1 core font that would mangle it.
"""

from __future__ import annotations

import os
from pathlib import Path

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)


class PdfError(Exception):
    """A PDF cannot be produced; the message says what to install or fix."""


def font_path() -> Path:
    override = os.environ.get("KIOSK_PDF_FONT")
    for candidate in ([override] if override else []) + list(FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PdfError("no Unicode font found for PDF output: install fonts-dejavu-core or set KIOSK_PDF_FONT to a .ttf file")
