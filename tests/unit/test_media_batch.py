"""Batches of no-reply media commands on the wire (appliance/media/protocol.py)."""

from __future__ import annotations

import json

from appliance.media.protocol import MAX_MESSAGE, batch_messages, decode, encode


def _cmd(i: int, pad: int) -> bytes:
    return encode({"op": "configure_leg", "args": {"leg_id": f"l{i}", "pad": "x" * pad}, "noreply": True})


def test_commands_join_into_one_batch_in_order() -> None:
    cmds = [_cmd(i, 10) for i in range(5)]
    (msg,) = batch_messages(cmds)
    batch = decode(msg)
    assert batch["op"] == "batch" and batch["noreply"] is True
    assert [c["args"]["leg_id"] for c in batch["cmds"]] == [f"l{i}" for i in range(5)]


def test_a_batch_never_exceeds_the_message_size_and_keeps_the_order() -> None:
    cmds = [_cmd(i, 20000) for i in range(7)] + [_cmd(7, MAX_MESSAGE - 120)] + [_cmd(8, 5)]
    msgs = batch_messages(cmds)
    assert all(len(m) <= MAX_MESSAGE for m in msgs)
    order: list[str] = []
    for m in msgs:
        obj = json.loads(m)
        order += [c["args"]["leg_id"] for c in obj["cmds"]] if obj["op"] == "batch" else [obj["args"]["leg_id"]]
    assert order == [f"l{i}" for i in range(9)]
    assert len(msgs) == 5  # 3 + 3 + 1 of 20 kB, the near-full one alone, then the last
