"""Outbound dialer: campaigns, leads, compliance checks, and the pacing that decides how many calls to place.

Like ``acd/``, it works on channels and agents, never on SIP; its pacing model (``pacing.py``, the
abandon ledger in ``abandon.py``) is pure logic with an explicit ``now``, driven offline by
``simulator.py``.
"""
