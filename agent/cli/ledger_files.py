"""Ledger files: a ledger's headings and rows written as CSV (UTF-8 with BOM) or Excel (.xlsx)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import IO, Any

from agent.domain import text_rules


def write_csv(path: Path | None, headings: list[str], body: list[list[Any]]) -> str | None:
    """CSV with a UTF-8 BOM so Excel opens Chinese text correctly; returns text when path is None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(headings)
    w.writerows([[text_rules.csv_cell(v) for v in row] for row in body])
    if path is None:
        return buf.getvalue()
    path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8", newline="")
    return None


def write_xlsx(
    path: Path | IO[bytes], title: str, headings: list[str], body: list[list[Any]]
) -> None:
    """An .xlsx workbook with one sheet, bold frozen headings and fitted column widths."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(headings)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in body:
        ws.append([text_rules.xlsx_cell(v) for v in row])
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, even when it starts with '=': never a formula
    ws.freeze_panes = "A2"
    for i, head in enumerate(headings, 1):
        width = max([_width(head), *(_width(r[i - 1]) for r in body)])
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = min(width + 2, 60)
    wb.save(path)


def _width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def ledger_bytes(fmt: str, title: str, headings: list[str], body: list[list[Any]]) -> bytes:
    """A ledger as the bytes of a file: "csv" (UTF-8 with BOM) or "xlsx" (the receiver's
    download links)."""
    if fmt == "csv":
        return ("\ufeff" + (write_csv(None, headings, body) or "")).encode("utf-8")
    buf = io.BytesIO()
    write_xlsx(buf, title, headings, body)
    return buf.getvalue()
