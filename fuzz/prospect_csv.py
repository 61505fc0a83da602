"""The dialer's CSV prospect import (appliance.dialer.prospects): an uploaded file's bytes,
decoded and read with a column mapping.

Contract: ``decode`` and ``read_prospects`` raise only ProspectFileError; row problems come back
in the report; every lead has an E.164 number and every row is a lead or a problem.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main

with instrumented():
    from appliance.dialer import prospects

_MAPPINGS = ({"number": "number"}, {"number": "phone", "name": "name"}, {"number": "number", "company": "org"})


def one_input(data: bytes) -> None:
    if not data:
        return
    mapping = _MAPPINGS[data[0] % len(_MAPPINGS)]
    leads, report = prospects.read_prospects(prospects.decode(data[1:]), mapping, country="GB",
                                             site_timezone="Europe/London", dnc={"+442079460000"},
                                             existing={"+442079460001"})
    if any(not lead.number.startswith("+") for lead in leads):
        raise AssertionError(f"a lead without an E.164 number: {leads!r}")
    if len(leads) + len(report.problems) != report.rows or report.imported != len(leads):
        raise AssertionError(f"{report.rows} rows, {len(leads)} leads, {len(report.problems)} problems")


TARGET = Target("prospect_csv", __doc__ or "", one_input, (prospects.ProspectFileError,))

if __name__ == "__main__":
    main(TARGET)
