"""Printable copies (21 CFR 11.10(b), Annex 11 §8) rendered with fpdf2, in a Unicode font (pdf_font)."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from kiosk.services.atomic_file import written_atomically
from kiosk.services.pdf_font import font_path


class Report(FPDF):
    """A4 portrait report with a running footer that names what the copy proves."""

    def __init__(self, title: str, footer_text: str = "") -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        regular = font_path()
        bold = regular.with_name(regular.stem + "-Bold.ttf")
        self.add_font("body", "", str(regular))
        self.add_font("body", "B", str(bold if bold.is_file() else regular))
        self.title_text = title
        self.footer_text = footer_text
        self.set_auto_page_break(auto=True, margin=22)
        self.set_margins(14, 14, 14)
        self.add_page()
        self.set_font("body", "B", 15)
        self.multi_cell(0, 8, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-18)
        self.set_font("body", "", 7)
        text = f"{self.footer_text}   page {self.page_no()}/{{nb}}" if self.footer_text else f"page {self.page_no()}/{{nb}}"
        self.multi_cell(0, 3.5, text, align="L")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font("body", "B", 11)
        self.multi_cell(0, 6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str, size: float = 9) -> None:
        self.set_font("body", "", size)
        self.multi_cell(0, 4.6, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(self, header: list[str], rows: list[list[str]], widths: list[float] | None = None, size: float = 7.5) -> None:
        self.set_font("body", "", size)
        with super().table(col_widths=widths, text_align="LEFT", line_height=size * 0.55,
                           first_row_as_headings=True) as table:
            for cells in [header, *rows]:
                row = table.row()
                for cell in cells:
                    row.cell(str(cell))

    def save(self, out: Path) -> None:
        data = self.output()
        with written_atomically(out) as fh:
            fh.write(data)


def markdown_table_pdf(markdown: str, out: Path) -> None:
    """Render the simple markdown the reports produce (headings, bullets, one table)."""
    lines = markdown.splitlines()
    title = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else "Report"
    pdf = Report(title)
    header: list[str] | None = None
    rows: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("|"):
            cells = [c.strip().replace("<br>", "\n") for c in line.strip().strip("|").split("|")]
            if all(set(c) <= {"-", ":"} for c in cells):
                continue
            if header is None:
                header = cells
            else:
                rows.append(cells)
        elif line.strip():
            pdf.paragraph(line.lstrip("- ").strip())
    if header:
        widths = [16, 40, 22, 102][: len(header)] if len(header) == 4 else None
        pdf.table(header, rows, widths)
    pdf.save(Path(out))
