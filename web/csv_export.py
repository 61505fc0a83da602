"""CSV downloads: the one writer every export uses, so no cell is ever read as a formula.

A spreadsheet runs a cell that starts with =, +, -, @ (or a tab/CR/LF before one) as a formula
(OWASP "CSV Injection"); a caller's SIP display name or a line of an imported prospect file can
be "=HYPERLINK(...)". Such text gets a leading apostrophe, which spreadsheets show as text.
Numbers stay numbers, and so do phone numbers such as "+4930...".
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response

_FORMULA_START = "=+-@\t\r\n"
_SIGNED_NUMBER = re.compile(r"[+-][0-9 .]*")


def csv_cell(value: Any) -> Any:
    """`value`, or the text with a leading apostrophe when a spreadsheet would run it."""
    if isinstance(value, str) and value and value[0] in _FORMULA_START and not _SIGNED_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                 excel_bom: bool = False) -> Response:
    """A CSV attachment of `rows` under `header`, every cell through `csv_cell`.

    `excel_bom` starts the file with a UTF-8 byte-order mark, which makes Excel read UTF-8.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(v) for v in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return Response(("\ufeff" if excel_bom else "") + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
