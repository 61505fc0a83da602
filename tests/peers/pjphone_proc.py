"""A pjsua2 phone in its own process, driven over stdin/stdout JSON lines.

pjsua2 allows one Endpoint per process and (in the pjsua2-python wheel) at most 4 calls,
so every test phone is a child process. Protocol (one JSON object per line):
  parent -> child  {"id": 1, "cmd": "call", "args": {...}}
  child -> parent  {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": "..."}
  child -> parent  {"event": "state", "call": 0, ...}   (asynchronous)
Everything pjsua2 does runs in this process's main thread: `threadCnt = 0`,
`mainThreadOnly = True`, media on the SIP ioqueue, and the loop polls `libHandleEvents`
between stdin reads, so Python callbacks never run on a foreign pjlib thread.
Run as: python -m tests.peers.pjphone_proc '<json config>'
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import sys
import time
from typing import Any

import pjsua2 as pj

_STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
_MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}
_DIR_NAMES = {
    pj.PJMEDIA_DIR_NONE: "inactive",
    pj.PJMEDIA_DIR_ENCODING: "sendonly",
    pj.PJMEDIA_DIR_DECODING: "recvonly",
    pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv",
}
_CODEC_IDS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/16000"}
_NAME_ADDR = re.compile(r'^\s*(?:"(?P<q>[^"]*)"|(?P<t>[^<"]*?))\s*<(?P<uri>[^>]*)>')


def parse_name_addr(value: str) -> tuple[str, str]:
    """Split a From/To value ('"Alice" <sip:1001@h>') into (display name, URI)."""
    m = _NAME_ADDR.match(value)
    if not m:
        return "", value.strip()
    display = m.group("q") if m.group("q") is not None else (m.group("t") or "")
    return display.strip(), m.group("uri")


def wav_complete(path: str) -> bool:
    """True once a RIFF/WAVE file's header size field matches its length (writer closed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    return (
        len(head) == 12
        and head[:4] == b"RIFF"
        and head[8:12] == b"WAVE"
        and int.from_bytes(head[4:8], "little") == size - 8
    )


class _Out:
    """Writes protocol lines to the private copy of the original stdout."""

    def __init__(self, fd: int) -> None:
        self._f = os.fdopen(fd, "w", buffering=1)

    def send(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj) + "\n")
        self._f.flush()


def _without_telephone_event(sdp_text: str) -> str:
    """The SDP with every telephone-event payload type removed (m= list, rtpmap, fmtp)."""
    lines = sdp_text.replace("\r\n", "\n").split("\n")
    pts = {ln.split()[0].split(":")[1] for ln in lines
           if ln.startswith("a=rtpmap:") and "telephone-event" in ln.lower()}
    out = []
    for ln in lines:
        if ln.startswith("m=audio"):
            head, fmts = ln.split()[:3], ln.split()[3:]
            ln = " ".join(head + [f for f in fmts if f not in pts])
        elif ln.startswith(("a=rtpmap:", "a=fmtp:")) and ln.split()[0].split(":")[1] in pts:
            continue
        out.append(ln)
    return "\r\n".join(out)


class PhoneCall(pj.Call):
    """One call leg; posts state/media/DTMF/transfer events and wires players/recorders."""

    def __init__(self, phone: Phone, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.phone = phone
        self.index = phone.next_index()
        self.player: pj.AudioMediaPlayer | None = None
        self.player_path: str | None = None
        self.player_loop = True
        self.recorder: pj.AudioMediaRecorder | None = None
        self.record_path: str | None = None
        self.connected_media: pj.AudioMedia | None = None
        self.last_code = 0
        self.disconnected = False

    # -- media wiring -------------------------------------------------------------------
    def _audio_media(self) -> pj.AudioMedia | None:
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
                pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
            ):
                return self.getAudioMedia(mi.index)
        return None

    def wire(self) -> None:
        """(Re)connect player -> call and call -> recorder once the audio media exists."""
        if self.disconnected:
            return
        aud = self._audio_media()
        if aud is None:
            return
        self.connected_media = aud
        if self.player_path and self.player is None:
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(
                self.player_path, 0 if self.player_loop else pj.PJMEDIA_FILE_NO_LOOP
            )
        if self.player is not None:
            self.player.startTransmit(aud)
        if self.record_path and self.recorder is None:
            self.recorder = pj.AudioMediaRecorder()
            self.recorder.createRecorder(self.record_path)
        if self.recorder is not None:
            aud.startTransmit(self.recorder)

    def stop_record(self) -> None:
        """Destroy the recorder: pjmedia writes the final WAV header when the port closes.

        pjsua 2.15 removes conference ports asynchronously (in the clock thread), so the
        file is only final a few ms later; the main loop reports it by `record_closed`.
        """
        if self.recorder is not None:
            self.phone.pending_close.append((self.record_path or "", time.monotonic() + 2.0))
            if self.connected_media is not None and not self.disconnected:
                try:
                    self.connected_media.stopTransmit(self.recorder)
                except pj.Error:
                    pass  # the conference port may already be gone after a re-INVITE
            self.recorder = None
        self.record_path = None

    def stop_play(self) -> None:
        self.player = None
        self.player_path = None

    # -- callbacks (main thread only) ---------------------------------------------------
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        ci = self.getInfo()
        state = _STATE_NAMES.get(ci.state, str(ci.state))
        self.last_code = int(ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.stop_record()
            self.stop_play()
        ev = {
            "event": "state",
            "call": self.index,
            "state": state,
            "code": self.last_code,
            "reason": ci.lastReason,
        }
        if self.phone.pending_close:
            # Report DISCONNECTED only once the recording is a complete WAV file, so a test
            # can read it right after wait_state(call, "DISCONNECTED").
            self.phone.deferred.append(ev)
        else:
            self.phone.out.send(ev)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.wire()
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                self.phone.out.send(
                    {
                        "event": "media",
                        "call": self.index,
                        "status": _MEDIA_STATUS.get(mi.status, str(mi.status)),
                        "dir": _DIR_NAMES.get(mi.dir, str(mi.dir)),
                    }
                )

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.phone.dtmf.append(prm.digit)
        self.phone.out.send({"event": "dtmf", "call": self.index, "digit": prm.digit})

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        # pjsua2 always offers and answers telephone-event; a phone without it (in-band only)
        # has it cut from the SDP it is about to send.
        if not self.phone.telephone_event:
            prm.sdp.wholeSdp = _without_telephone_event(prm.sdp.wholeSdp)

    def onDtmfEvent(self, prm: pj.OnDtmfEventParam) -> None:
        # Called at the start and at the end of an RFC 4733 event; only the end knows its length.
        if prm.flags & 2:  # PJMEDIA_STREAM_DTMF_IS_END (bit 0 is IS_UPDATE)
            self.phone.out.send({"event": "dtmf_end", "call": self.index, "digit": prm.digit,
                                 "duration_ms": prm.duration})

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # Accept REFER (RFC 3515 section 2.4.2) and report it; pjsua then dials the target.
        prm.statusCode = 202
        self.phone.out.send({"event": "xfer_request", "call": self.index, "target": prm.dstUri})

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        self.phone.out.send(
            {
                "event": "xfer_status",
                "call": self.index,
                "code": int(prm.statusCode),
                "reason": prm.reason,
                "final": bool(prm.finalNotify),
            }
        )

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:
        new = PhoneCall(self.phone, self.phone.account_for_calls(), prm.newCallId)
        self.phone.calls[new.index] = new
        self.phone.out.send({"event": "replaced", "call": self.index, "new_call": new.index})


class PhoneAccount(pj.Account):
    """An account: incoming calls and registration state become events."""

    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone
        self.reg_code = 0

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = PhoneCall(self.phone, self, prm.callId)
        self.phone.calls[call.index] = call
        ci = call.getInfo()
        display, uri = parse_name_addr(ci.remoteUri)
        self.phone.out.send(
            {
                "event": "incoming",
                "call": call.index,
                "remote_uri": uri,
                "display": display,
                "remote_contact": ci.remoteContact,
                "local_uri": ci.localUri,
            }
        )
        opt = pj.CallOpParam()
        if self.phone.auto_answer:
            call.player_path = self.phone.auto_play
            call.record_path = (
                self.phone.auto_record.format(call=call.index) if self.phone.auto_record else None
            )
            opt.statusCode = 200
        else:
            opt.statusCode = 180
        call.answer(opt)

    def onMwiInfo(self, prm: pj.OnMwiInfoParam) -> None:
        # Solicited or unsolicited message-summary NOTIFY (RFC 3842): the whole message for the test.
        self.phone.out.send({"event": "mwi", "message": prm.rdata.wholeMsg})

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.reg_code = int(prm.code)
        info = self.getInfo()
        self.phone.out.send(
            {
                "event": "reg",
                "code": self.reg_code,
                "reason": prm.reason,
                "active": info.regIsActive,
            }
        )


class Phone:
    """The endpoint, its transport, accounts and calls; executes parent commands."""

    def __init__(self, cfg: dict[str, Any], out: _Out) -> None:
        self.out = out
        self.name: str = cfg.get("name", "phone")
        self.bind_ip: str = cfg.get("bind_ip", "127.0.0.1")
        self.transport: str = cfg.get("transport", "udp")
        self.codecs: list[str] = cfg.get("codecs", ["PCMU"])
        self.telephone_event: bool = cfg.get("telephone_event", True)
        self.auto_answer: bool = bool(cfg.get("auto_answer", False))
        self.auto_play: str | None = cfg.get("auto_play")
        self.auto_record: str | None = cfg.get("auto_record")
        self.calls: dict[int, PhoneCall] = {}
        self.dtmf: list[str] = []
        self.pending_close: list[tuple[str, float]] = []
        self.deferred: list[dict[str, Any]] = []
        self._next = 0
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 4
        ep_cfg.uaConfig.userAgent = f"plateau-test-pjsua2/{self.name}"
        ep_cfg.logConfig.level = int(cfg.get("log_level", 3))
        ep_cfg.logConfig.consoleLevel = int(cfg.get("log_level", 3))
        ep_cfg.medConfig.threadCnt = 0
        ep_cfg.medConfig.hasIoqueue = False  # media shares the SIP ioqueue we poll
        # The conference bridge runs at the wideband rate only when G.722 may be used, so
        # recordings are 8 kHz for narrowband codecs and 16 kHz for G.722.
        rate = 16000 if "G722" in self.codecs else 8000
        ep_cfg.medConfig.clockRate = rate
        ep_cfg.medConfig.sndClockRate = rate
        ep_cfg.medConfig.noVad = True
        ep_cfg.medConfig.ecTailLen = 0
        self.ep.libInit(ep_cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = int(cfg.get("sip_port", 0))
        tcfg.boundAddress = self.bind_ip
        ttype = pj.PJSIP_TRANSPORT_TCP if self.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        self.tid = self.ep.transportCreate(ttype, tcfg)
        local = self.ep.transportGetInfo(self.tid).localName
        self.sip_port = int(local.rsplit(":", 1)[1])
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self._set_codecs()
        # RTP from a random even port; pjsua retries the next pairs when one is taken.
        self.rtp_port = int(cfg.get("rtp_port", 0)) or random.randrange(30000, 60000, 2)
        self.local_acc = PhoneAccount(self)
        self.local_acc.create(
            self._acc_cfg(f"sip:{self.name}@{self.bind_ip}:{self.sip_port}"), True
        )
        self.reg_acc: PhoneAccount | None = None

    def next_index(self) -> int:
        self._next += 1
        return self._next - 1

    def _set_codecs(self) -> None:
        wanted = [_CODEC_IDS[c] for c in self.codecs]
        for ci in self.ep.codecEnum2():
            cid = ci.codecId
            prio = 0
            for rank, w in enumerate(wanted):
                if cid.startswith(w):
                    prio = 254 - rank
            if cid.startswith("telephone-event"):
                continue
            self.ep.codecSetPriority(cid, prio)

    def _tp_param(self) -> str:
        return ";transport=tcp" if self.transport == "tcp" else ""

    def _acc_cfg(self, id_uri: str) -> pj.AccountConfig:
        acfg = pj.AccountConfig()
        acfg.idUri = id_uri
        acfg.sipConfig.transportId = self.tid
        acfg.mediaConfig.transportConfig.port = self.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = self.bind_ip
        return acfg

    def account_for_calls(self) -> PhoneAccount:
        return self.reg_acc if self.reg_acc is not None else self.local_acc

    # -- commands ---------------------------------------------------------------------
    def cmd_info(self) -> dict[str, Any]:
        return {"sip_port": self.sip_port, "name": self.name, "rtp_port": self.rtp_port}

    def cmd_register(
        self, user: str, password: str, host: str, port: int, expires: int = 300
    ) -> None:
        acfg = self._acc_cfg(f"sip:{user}@{host}:{port}")
        acfg.regConfig.registrarUri = f"sip:{host}:{port}{self._tp_param()}"
        acfg.regConfig.timeoutSec = expires
        acfg.regConfig.retryIntervalSec = 0  # a failed registration stays failed for the test
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        acfg.sipConfig.proxies.append(f"sip:{host}:{port}{self._tp_param()};lr")
        if self.reg_acc is not None and not self.reg_acc.getInfo().regIsActive:
            # A failed account registers again only when made anew (modify() of the same
            # account sends nothing): a test retrying a refused REGISTER gets a new one.
            self.reg_acc.shutdown()
            self.reg_acc = None
        if self.reg_acc is not None:
            self.reg_acc.modify(acfg)
        else:
            self.reg_acc = PhoneAccount(self)
            self.reg_acc.create(acfg, False)

    def cmd_unregister(self) -> None:
        if self.reg_acc is not None:
            self.reg_acc.setRegistration(False)

    def cmd_call(self, uri: str, play_wav: str | None = None, record_wav: str | None = None) -> int:
        call = PhoneCall(self, self.account_for_calls())
        call.player_path = play_wav
        call.record_path = record_wav
        self.calls[call.index] = call
        call.makeCall(uri, pj.CallOpParam(True))
        return call.index

    def _call(self, call: int) -> PhoneCall:
        try:
            return self.calls[int(call)]
        except KeyError:
            raise ValueError(f"no call {call}") from None

    def cmd_answer(
        self, call: int, code: int = 200, play_wav: str | None = None, record_wav: str | None = None
    ) -> None:
        c = self._call(call)
        if play_wav:
            c.player_path = play_wav
        if record_wav:
            c.record_path = record_wav
        opt = pj.CallOpParam()
        opt.statusCode = code
        c.answer(opt)

    def cmd_hangup(self, call: int, code: int = 0) -> None:
        opt = pj.CallOpParam()
        opt.statusCode = code
        self._call(call).hangup(opt)

    def cmd_play(self, call: int, wav_path: str, loop: bool = True) -> None:
        c = self._call(call)
        c.stop_play()
        c.player_path = wav_path
        c.player_loop = loop
        c.wire()

    def cmd_stop_play(self, call: int) -> None:
        c = self._call(call)
        if c.player is not None and c.connected_media is not None:
            c.player.stopTransmit(c.connected_media)
        c.stop_play()

    def cmd_record(self, call: int, wav_path: str) -> None:
        c = self._call(call)
        c.stop_record()
        c.record_path = wav_path
        c.wire()

    def cmd_stop_record(self, call: int) -> None:
        self._call(call).stop_record()

    def cmd_dial_dtmf(self, call: int, digits: str, method: str = "rfc4733", duration_ms: int = 0) -> None:
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        if duration_ms:
            prm.duration = duration_ms
        prm.method = (
            pj.PJSUA_DTMF_METHOD_SIP_INFO if method == "info" else pj.PJSUA_DTMF_METHOD_RFC2833
        )
        self._call(call).sendDtmf(prm)

    def cmd_received_dtmf(self) -> list[str]:
        return list(self.dtmf)

    def cmd_hold(self, call: int) -> None:
        self._call(call).setHold(pj.CallOpParam(True))

    def cmd_unhold(self, call: int) -> None:
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self._call(call).reinvite(prm)

    def cmd_xfer(self, call: int, target_uri: str) -> None:
        self._call(call).xfer(target_uri, pj.CallOpParam(True))

    def cmd_xfer_replaces(self, call: int, dest_call: int) -> None:
        self._call(call).xferReplaces(self._call(dest_call), pj.CallOpParam(True))

    def cmd_media_state(self, call: int) -> dict[str, Any]:
        ci = self._call(call).getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                return {
                    "status": _MEDIA_STATUS.get(mi.status, str(mi.status)),
                    "dir": _DIR_NAMES.get(mi.dir, str(mi.dir)),
                    "index": mi.index,
                }
        return {"status": "NONE", "dir": "inactive", "index": -1}

    def cmd_call_info(self, call: int) -> dict[str, Any]:
        c = self._call(call)
        if c.disconnected:
            return {"state": "DISCONNECTED", "code": c.last_code, "codec": ""}
        ci = c.getInfo()
        codec = ""
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status != pj.PJSUA_CALL_MEDIA_NONE:
                si = c.getStreamInfo(mi.index)
                codec = f"{si.codecName}/{si.codecClockRate}"
        display, uri = parse_name_addr(ci.remoteUri)
        return {
            "state": _STATE_NAMES.get(ci.state, str(ci.state)),
            "code": int(ci.lastStatusCode),
            "codec": codec,
            "remote_uri": uri,
            "display": display,
        }

    def cmd_rtcp_stats(self, call: int) -> dict[str, Any]:
        c = self._call(call)
        idx = self.cmd_media_state(call)["index"]
        if idx < 0:
            raise ValueError(f"call {call} has no audio stream")
        st = c.getStreamStat(idx).rtcp
        rx, tx = st.rxStat, st.txStat
        return {
            "rx_pkt": int(rx.pkt),
            "rx_loss": int(rx.loss),
            "rx_jitter_mean_us": float(rx.jitterUsec.mean),
            "rx_jitter_max_us": float(rx.jitterUsec.max),
            "tx_pkt": int(tx.pkt),
            "tx_loss": int(tx.loss),
            "tx_jitter_mean_us": float(tx.jitterUsec.mean),
            "rtt_mean_us": float(st.rttUsec.mean),
        }

    def flush_closed(self) -> None:
        """Emit `record_closed` for finished recordings, then any deferred events."""
        still = []
        now = time.monotonic()
        for path, deadline in self.pending_close:
            complete = wav_complete(path)
            if complete or now > deadline:
                self.out.send({"event": "record_closed", "path": path, "complete": complete})
            else:
                still.append((path, deadline))
        self.pending_close = still
        if not still and self.deferred:
            for ev in self.deferred:
                self.out.send(ev)
            self.deferred.clear()

    def shutdown(self) -> None:
        for c in self.calls.values():
            c.stop_record()
            c.stop_play()
        self.ep.hangupAllCalls()
        for _ in range(20):
            self.ep.libHandleEvents(10)
        self.calls.clear()
        self.ep.libDestroy()


def main() -> int:
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    # pjlib prints to fd 1; keep a private copy of stdout for the protocol and point fd 1 at
    # stderr so no library output can corrupt a JSON line.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    out = _Out(proto_fd)
    phone = Phone(cfg, out)
    out.send({"event": "ready", **phone.cmd_info()})
    stdin_fd = sys.stdin.fileno()
    buf = b""
    running = True
    while running:
        ready, _, _ = select.select([stdin_fd], [], [], 0)
        if ready:
            chunk = os.read(stdin_fd, 65536)
            if not chunk:
                break  # parent went away: never outlive it
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                req = json.loads(line)
                if req.get("cmd") == "quit":
                    out.send({"id": req.get("id"), "ok": True, "result": None})
                    running = False
                    break
                try:
                    fn = getattr(phone, "cmd_" + req["cmd"])
                    result = fn(**req.get("args", {}))
                    out.send({"id": req.get("id"), "ok": True, "result": result})
                except (pj.Error, ValueError, TypeError, AttributeError, KeyError) as exc:
                    msg = exc.info() if isinstance(exc, pj.Error) else repr(exc)
                    out.send({"id": req.get("id"), "ok": False, "error": msg})
        phone.ep.libHandleEvents(10)
        if phone.pending_close or phone.deferred:
            phone.flush_closed()
    phone.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
