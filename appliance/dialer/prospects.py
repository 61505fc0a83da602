"""Prospect files: a CSV read through a column mapping into leads, with a report of every row left out.

Admins export prospect lists from a CRM or a spreadsheet, so the reader takes what those write:
UTF-8 (with or without the BOM Excel adds) or Windows-1252, comma, semicolon (French Excel) or
tab separated, a header row. The mapping names which column holds the number (required) and
renames other columns for the screen pop; unmapped columns are kept under their own header.

Nothing is dropped silently: each row that does not become a lead is listed in the report with
its line number and the reason (bad number, duplicate in the file, already in the campaign, on
the do-not-call list, malformed row), and each reason is counted.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.dialer.numbers import NumberError, normalise

MAX_ROWS = 200_000
MAX_FIELD = 1000
BAD_NUMBER = "bad-number"
DUPLICATE = "duplicate"  # the same number earlier in this file
ALREADY_LISTED = "already-listed"  # the number is already a lead of the campaign
ON_DNC = "dnc"
MALFORMED = "malformed-row"


class ProspectFileError(ValueError):
    """The file as a whole cannot be read (encoding, no header, no number column)."""


@dataclass(frozen=True)
class Lead:
    """A row that becomes a lead: its E.164 number, time zone and card fields."""

    line: int
    number: str
    timezone: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Problem:
    """A row left out, and why."""

    line: int
    reason: str
    detail: str
    raw_number: str = ""


@dataclass
class ImportReport:
    """What happened to every data row of the file."""

    rows: int = 0
    imported: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(p.reason for p in self.problems))

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "imported": self.imported, "counts": self.counts,
                "problems": [{"line": p.line, "reason": p.reason, "detail": p.detail, "number": p.raw_number}
                             for p in self.problems]}


def decode(blob: bytes) -> str:
    """Text of a prospect file: UTF-8 (BOM or not), else Windows-1252, which every byte decodes to but 5."""
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return blob.decode("cp1252")
    except UnicodeDecodeError:
        raise ProspectFileError("the file is neither UTF-8 nor Windows-1252 text") from None


def _dialect(text: str) -> type[csv.Dialect]:
    """Excel's dialect with the separator the header line uses most (csv.Sniffer guesses wrong on short rows)."""
    header = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=header.count)

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    return Dialect


def read_prospects(text: str, mapping: Mapping[str, str], *, country: str, site_timezone: str,
                   dnc: Container[str], existing: Container[str]) -> tuple[list[Lead], ImportReport]:
    """Leads from CSV `text`; `mapping` is lead field -> column header and must map "number".

    `dnc` and `existing` are E.164 numbers on the do-not-call list and already in the campaign.
    """
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ProspectFileError("the file is empty: a header row naming the columns is needed") from None
    except csv.Error as exc:
        raise ProspectFileError(f"line 1: {exc}") from None
    if "number" not in mapping:
        raise ProspectFileError("the column mapping must say which column holds the number")
    missing = [col for col in mapping.values() if col not in header]
    if missing:
        raise ProspectFileError(f"columns {', '.join(repr(c) for c in missing)} are not in the header "
                                f"({', '.join(header)})")
    if len(set(header)) != len(header):
        raise ProspectFileError("two columns of the header have the same name")
    rename = {col: name for name, col in mapping.items()}
    number_col = header.index(mapping["number"])
    leads: list[Lead] = []
    report = ImportReport()
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are not rows
            report.rows += 1
            if report.rows > MAX_ROWS:
                raise ProspectFileError(f"more than {MAX_ROWS} rows: split the file")
            raw = row[number_col].strip() if number_col < len(row) else ""
            if len(row) != len(header):
                report.problems.append(Problem(line, MALFORMED, f"{len(row)} fields, the header has {len(header)}",
                                               raw))
                continue
            if any(len(cell) > MAX_FIELD for cell in row):
                report.problems.append(Problem(line, MALFORMED, f"a field is longer than {MAX_FIELD} characters",
                                               raw))
                continue
            try:
                number = normalise(raw, country, site_timezone)
            except NumberError as exc:
                report.problems.append(Problem(line, BAD_NUMBER, str(exc), raw))
                continue
            if number.e164 in seen:
                report.problems.append(Problem(line, DUPLICATE, f"{number.e164} is already on line {seen[number.e164]}",
                                               raw))
                continue
            seen[number.e164] = line
            if number.e164 in dnc:
                report.problems.append(Problem(line, ON_DNC, f"{number.e164} is on the do-not-call list", raw))
                continue
            if number.e164 in existing:
                report.problems.append(Problem(line, ALREADY_LISTED, f"{number.e164} is already a lead of this "
                                               "campaign", raw))
                continue
            fields = {rename.get(col, col): cell.strip() for col, cell in zip(header, row) if col != mapping["number"]}
            leads.append(Lead(line, number.e164, number.timezone, fields))
    except csv.Error as exc:
        raise ProspectFileError(f"line {reader.line_num}: {exc}") from None
    report.imported = len(leads)
    return leads, report
