"""Ticket printers: the PDF read back with pdftotext, ESC/POS bytes against a recording, and a
print to a real CUPS queue with the cups-pdf backend."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config import TicketsConfig
from agent.domain import tickets
from drivers.printers import PrinterOffline, escpos, pdf
from drivers.printers.cups import CupsPrinter

CASES = Path(__file__).parent / "printer_cases"
TZ = ZoneInfo("Asia/Shanghai")
TICKET = tickets.Ticket(
    number="wb1-20261129-0007",
    serial=7,
    day="2026-11-29",
    visit="0190a1b2-0000-7000-8000-000000000001",
    weighing="w-gross",
    plate="苏A12345",
    order="SO1",
    product="P.O 42.5",
    load="bagged",
    bags=600,
    bag_kg=50,
    tare_kg=15020,
    tare_at="2026-11-29T01:00:00.000Z",
    gross_kg=45060,
    gross_at="2026-11-29T02:10:00.000Z",
    net_kg=30040,
    scale="scale1",
    flags=("bagged_overweight",),
    operator="李",
    issued_at="2026-11-29T02:10:01.000Z",
)
CONFIG = TicketsConfig(company="示例水泥有限公司")


def pdftotext(data: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "ticket.pdf"
    path.write_bytes(data)
    out = subprocess.run(
        ["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_pdf_ticket_reads_back_with_numbers_and_chinese(tmp_path: Path) -> None:
    doc = tickets.document(TICKET, CONFIG, TZ)
    assert pdftotext(pdf.render(doc, paper="A5"), tmp_path) == [
        "示例水泥有限公司",
        "过磅单",
        "No. wb1-20261129-0007",
        "车牌号 苏A12345",
        "订单号 SO1",
        "品种 P.O 42.5",
        "装车方式 袋装",
        "袋数 600 袋 × 50 kg",
        "皮重 15020 kg 2026-11-29 09:00:00",
        "毛重 45060 kg 2026-11-29 10:10:00",
        "净重 30040 kg",
        "地磅 scale1",
        "司磅员 李",
        "开单时间 2026-11-29 10:10:01",
        "! 袋装重车超重",
        "0190a1b2-0000-7000-8000-000000000001",
        "请凭此磅单到质控处开具合格证",
    ]
    copy = pdftotext(pdf.render(tickets.document(TICKET, CONFIG, TZ, copy=1), paper="A4"), tmp_path)
    assert copy[:3] == ["示例水泥有限公司", "过磅单", "副本"]


def test_pdf_embeds_the_chinese_font() -> None:
    data = pdf.render(tickets.document(TICKET, CONFIG, TZ))
    assert b"/FontFile2" in data and b"WenQuanYi" in data


def test_escpos_bytes_match_the_recording() -> None:
    """printer_cases/*.bin were recorded from this renderer and checked command by command
    against the ESC/POS reference (FS & Chinese mode, GB18030 text, GS ( k QR, GS V cut);
    a change to them must be checked the same way before the recording is replaced."""
    for columns, copy in ((32, 0), (48, 1)):
        doc = tickets.document(TICKET, CONFIG, TZ, copy=copy)
        recording = (CASES / f"ticket-{columns}-copy{copy}.bin").read_bytes()
        assert escpos.render(doc, columns=columns) == recording


def test_escpos_offline_printer_is_one_sentence(tmp_path: Path) -> None:
    printer = escpos.EscposPrinter("gate", str(tmp_path / "no-such-device"))
    doc = tickets.document(TICKET, CONFIG, TZ)
    with pytest.raises(PrinterOffline) as err:
        printer.print_document(doc)
    assert str(err.value) == (
        f"the printer gate at {tmp_path / 'no-such-device'} cannot be reached"
        " (No such file or directory); check its power, cable and paper"
    )


@pytest.fixture
def cups_queue() -> Iterator[str]:
    """A cups-pdf queue on the machine's CUPS (started here if it is not running)."""
    for tool in ("cupsd", "lpadmin", "lp", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    if (
        subprocess.run(["lpstat", "-r"], capture_output=True, text=True).stdout.strip()
        != "scheduler is running"
    ):
        subprocess.run(["cupsd"], check=True)
        deadline = time.monotonic() + 20
        while (
            subprocess.run(["lpstat", "-r"], capture_output=True, text=True).stdout.strip()
            != "scheduler is running"
        ):
            assert time.monotonic() < deadline, "cupsd did not start"
            time.sleep(0.2)
    queue = f"tally-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "lpadmin",
            "-p",
            queue,
            "-v",
            "cups-pdf:/",
            "-m",
            "lsb/usr/cups-pdf/CUPS-PDF_opt.ppd",
            "-E",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield queue
    finally:
        subprocess.run(["lpadmin", "-x", queue], capture_output=True)


def cups_pdf_output(job: str) -> Path:
    """The file cups-pdf wrote for job `QUEUE-N` (in the submitting user's ~/PDF)."""
    n = job.rsplit("-", 1)[1]
    found = sorted(Path.home().joinpath("PDF").glob(f"*job_{n}.pdf"))
    return found[-1] if found else Path()


def completed(queue: str, job: str) -> bool:
    out = subprocess.run(["lpstat", "-W", "completed", "-o", queue], capture_output=True, text=True)
    return job in out.stdout.split()


def test_print_to_a_real_cups_queue(cups_queue: str, tmp_path: Path) -> None:
    printer = CupsPrinter("office", cups_queue, "A5")
    subprocess.run(["cupsdisable", cups_queue], check=True)
    with pytest.raises(PrinterOffline, match=f"the CUPS queue '{cups_queue}' is stopped"):
        printer.print_document(tickets.document(TICKET, CONFIG, TZ))
    subprocess.run(["cupsenable", cups_queue], check=True)
    job = printer.print_document(tickets.document(TICKET, CONFIG, TZ))
    assert job.startswith(f"{cups_queue}-")
    deadline = time.monotonic() + 60
    while not completed(cups_queue, job) or not cups_pdf_output(job).is_file():
        assert time.monotonic() < deadline, f"cups-pdf wrote nothing for {job}"
        time.sleep(0.2)
    out = cups_pdf_output(job)
    try:
        # CUPS's filters re-encode the embedded font, so the text cannot be read back here
        # (the test above reads Tally's own PDF back); what CUPS printed is one A5 page.
        info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True)
        fields = dict(line.split(":", 1) for line in info.stdout.splitlines() if ":" in line)
        assert (
            fields["Pages"].strip(),
            fields["Page size"].strip().endswith("pts (A5)"),
            fields["Title"].strip(),
        ) == ("1", True, "(wb1-20261129-0007)"), info.stdout
    finally:
        out.unlink()
    missing = CupsPrinter("office", "tally-no-such-queue", "A5")
    with pytest.raises(PrinterOffline, match="CUPS has no usable queue 'tally-no-such-queue'"):
        missing.print_document(tickets.document(TICKET, CONFIG, TZ))
