"""The ticket as a PDF page (A5 or A4) with a CJK font embedded, drawn with fpdf2."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.printers.document import Document

if TYPE_CHECKING:
    from fpdf import FPDF

# Debian's CJK fonts, in order of preference (fonts-wqy-microhei, fonts-noto-cjk, fonts-wqy-zenhei).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
PAPERS = ("A5", "A4")


class FontMissing(Exception):
    """No font with Chinese glyphs is available; the message says what to install."""


def find_font(configured: str = "") -> str:
    """The CJK font file to embed: `configured` when given, else the first Debian one found."""
    if configured:
        if not Path(configured).is_file():
            raise FontMissing(f"the font file {configured!r} does not exist; fix [tickets] font")
        return configured
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    raise FontMissing(
        "no Chinese font is installed; install fonts-wqy-microhei or fonts-noto-cjk,"
        " or set [tickets] font to a .ttf/.ttc file"
    )


def render(doc: Document, *, paper: str = "A5", font: str = "") -> bytes:
    """The PDF bytes of `doc` on one portrait page of `paper` (A5 or A4), fonts embedded.

    Raises FontMissing when no CJK font can be found, ValueError for an unknown paper.
    """
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its subsetter chats at INFO
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, not {paper!r}")
    scale = 1.0 if paper == "A5" else 1.35
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fpdf2 notes that it fixed A5's size in 2.8.5
        pdf = FPDF(orientation="portrait", unit="mm", format=paper)
    pdf.set_creator("Tally")
    pdf.set_title(f"{doc.title} {doc.number}")
    pdf.set_auto_page_break(False)
    pdf.set_margins(12 * scale, 10 * scale, 12 * scale)
    pdf.add_page()
    pdf.add_font("cjk", fname=find_font(font))
    width = pdf.epw
    if doc.company:
        pdf.set_font("cjk", size=11 * scale)
        pdf.cell(width, 7 * scale, doc.company, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=18 * scale)
    pdf.cell(width, 11 * scale, doc.title, align="C", new_x="LMARGIN", new_y="NEXT")
    if doc.copy_mark:
        top = pdf.t_margin
        pdf.set_text_color(200, 0, 0)
        pdf.set_draw_color(200, 0, 0)
        pdf.set_font("cjk", size=16 * scale)
        pdf.set_xy(pdf.l_margin + width - 22 * scale, top)
        pdf.cell(22 * scale, 10 * scale, doc.copy_mark, border=1, align="C")
        pdf.set_text_color(0, 0, 0)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, top + (18 if doc.company else 11) * scale)
    pdf.set_font("cjk", size=10 * scale)
    pdf.cell(width, 6 * scale, f"No. {doc.number}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2 * scale)
    qr_mm = 30 * scale
    label_w = 26 * scale
    value_w = width - label_w
    line_h = 7.5 * scale
    pdf.set_font("cjk", size=11 * scale)
    for label, value in doc.rows:
        pdf.cell(label_w, line_h, label, border="B")
        pdf.cell(value_w, line_h, value, border="B", new_x="LMARGIN", new_y="NEXT")
    for note in doc.notes:
        pdf.set_text_color(200, 0, 0)
        pdf.multi_cell(width, 6 * scale, f"! {note}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    if doc.qr:
        top = pdf.get_y() + 3 * scale
        _qr(pdf, doc.qr, pdf.l_margin + width - qr_mm, top, qr_mm)
        pdf.set_font("cjk", size=8 * scale)
        pdf.set_xy(pdf.l_margin, top + qr_mm - 5 * scale)
        pdf.cell(width - qr_mm, 5 * scale, doc.qr)
    if doc.footer:
        pdf.set_font("cjk", size=9 * scale)
        pdf.set_xy(pdf.l_margin, pdf.h - pdf.b_margin - 14 * scale)
        pdf.multi_cell(width, 5 * scale, doc.footer, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """Draw the QR code of `payload` as filled squares (vector: sharp at any printer's dpi)."""
    import segno

    matrix = [list(row) for row in segno.make_qr(payload, error="m").matrix]
    module = size / (len(matrix) + 8)  # a quiet zone of 4 modules on each side
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                pdf.rect(x + (c + 4) * module, y + (r + 4) * module, module, module, style="F")
