"""Rate-limited logging of bad SIP input: one line per source per minute, every message counted."""

import logging

from appliance.sip.malformed import EdgeCounters, MalformedLog


def test_one_line_per_source_per_interval_with_the_suppressed_count(caplog):
    now = [1000.0]
    counters = EdgeCounters()
    mlog = MalformedLog(counters, interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="plateau.sip"):
        assert mlog.report(("192.0.2.1", 5060), "dropped", "junk")
        for _ in range(49):
            assert not mlog.report(("192.0.2.1", 5061), "dropped", "junk\nsecond line")
        assert mlog.report(("192.0.2.2", 5060), "answered_400", "other source")
        now[0] += 61
        assert mlog.report(("192.0.2.1", 5060), "dropped", "again")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert "+49 more from 192.0.2.1" in lines[2]
    assert counters.snapshot() == {"dropped": 51, "answered_400": 1}


def test_sources_remembered_are_bounded():
    mlog = MalformedLog(EdgeCounters())
    for n in range(MalformedLog.MAX_SOURCES + 10):
        mlog.report((f"10.0.{n // 256}.{n % 256}", 1), "dropped", "x")
    assert len(mlog._last) == MalformedLog.MAX_SOURCES
