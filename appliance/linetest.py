"""`plateau linetest TARGET`: a technician's test call with a tone, stream statistics and a MOS.

A pjsua2 phone in this process (null sound device: audio goes through a WAV player and a WAV
recorder on the conference bridge) optionally registers as an extension, calls TARGET, plays
a tone into the call and records what comes back. When the target is a loopback/echo line,
the recording must carry the tone again (Goertzel purity) and its onset gives the audio round
trip. It reports the set-up time, codec, RTCP loss and jitter (pjsua2 StreamStat, RFC 3550
6.4), round trip and an ITU-T G.107 E-model R/MOS (appliance.emodel).

pjsua2 runs single-threaded here, as in tests/peers/pjphone_proc.py: `threadCnt = 0`,
`mainThreadOnly = True`, and this module polls `libHandleEvents`, so callbacks never run on a
pjlib thread. The run is an explicit state machine (`Phase`); an illegal step is an error.
The pure analysis and the report (echo check, delay choice, E-model, text) live in
appliance.linetest_report; the names used here are importable from this module too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from appliance.linetest_report import (
    EXIT_FAIL,
    EXIT_PASS,
    LEAD_SILENCE_S,
    CallFailed,
    LinetestError,
    LinetestReport,
    RegistrationError,
    StreamFigures,
    TargetError,
    analyse_echo,
    assess,
    format_report,
    parse_server,
    target_uri,
    tone_signal,
)
from appliance.media.wavfile import WavError, WavRecorder, load_wav

try:  # pjsua2 is only needed to place the call; appliance.linetest_report works without it
    import pjsua2 as pj
except ImportError:  # pragma: no cover - depends on the installed wheel
    pj = None

TAIL_S = 0.6  # keep recording after the tone: the echo arrives one round trip late
REGISTER_TIMEOUT_S = 8.0
_CODEC_IDS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/16000"}


class Phase(Enum):
    """Stages of a test call."""

    IDLE = "idle"
    REGISTERING = "registering"
    CALLING = "calling"
    MEASURING = "measuring"
    RELEASING = "releasing"
    DONE = "done"
    FAILED = "failed"


_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.REGISTERING, Phase.CALLING, Phase.FAILED}),
    Phase.REGISTERING: frozenset({Phase.CALLING, Phase.FAILED}),
    Phase.CALLING: frozenset({Phase.MEASURING, Phase.FAILED}),
    Phase.MEASURING: frozenset({Phase.RELEASING, Phase.FAILED}),
    Phase.RELEASING: frozenset({Phase.DONE, Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
}


class PhaseError(RuntimeError):
    """An illegal transition of the test-call state machine."""


@dataclass(frozen=True, slots=True)
class LinetestOptions:
    """What to call and how."""

    target: str
    server: tuple[str, int] | None = None
    user: str | None = None
    password: str | None = None
    seconds: float = 5.0
    tone_hz: float = 1000.0
    expect_echo: bool = False
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    answer_timeout: float = 30.0
    log_level: int = 0


def _local_ip_towards(host: str) -> str:
    """The local address the kernel would use to reach `host` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))
            return str(s.getsockname()[0])
    except OSError:
        return "0.0.0.0"


def _uri_host(uri: str) -> str:
    rest = uri.split(":", 1)[1].split(";", 1)[0]
    hostport = rest.rsplit("@", 1)[-1]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


# -- the pjsua2 phone ------------------------------------------------------------------------
if pj is not None:

    class _Account(pj.Account):
        """Keeps the last registration status (onRegState runs in our libHandleEvents)."""

        def __init__(self) -> None:
            super().__init__()
            self.reg_code = 0
            self.reg_reason = ""

        def onRegState(self, prm: pj.OnRegStateParam) -> None:
            self.reg_code = int(prm.code)
            self.reg_reason = str(prm.reason)

    class _Call(pj.Call):
        """The test call: remembers its state and wires the player and recorder on media."""

        def __init__(self, acc: pj.Account, on_media: Callable[[pj.AudioMedia], None]) -> None:
            super().__init__(acc)
            self.on_media = on_media
            self.state = pj.PJSIP_INV_STATE_NULL
            self.code = 0
            self.reason = ""
            self.confirmed_at: float | None = None
            self.audio_index = -1

        def onCallState(self, prm: pj.OnCallStateParam) -> None:
            ci = self.getInfo()
            self.state, self.code, self.reason = ci.state, int(ci.lastStatusCode), ci.lastReason
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = time.monotonic()

        def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
            ci = self.getInfo()  # keep CallInfo alive: its media vector points into it
            for mi in ci.media:
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    if self.audio_index < 0:
                        self.audio_index = mi.index
                        self.on_media(self.getAudioMedia(mi.index))
                    return


class LineTester:
    """One test call with its own pjsua2 endpoint; `run()` once, then it is spent."""

    def __init__(self, opts: LinetestOptions, work_dir: Path) -> None:
        if pj is None:
            raise LinetestError("pjsua2 is not installed (pip install pjsua2-python)")
        if opts.seconds <= 0 or opts.seconds > 600:
            raise TargetError(f"--seconds {opts.seconds}: must be in (0, 600]")
        unknown = [c for c in opts.codecs if c not in _CODEC_IDS]
        if unknown or not opts.codecs:
            raise TargetError(f"--codecs: unknown {unknown}; choose from {', '.join(_CODEC_IDS)}")
        if opts.user and not opts.server:
            raise TargetError("--user needs --server HOST:PORT (the registrar)")
        self.opts = opts
        self.uri = target_uri(opts.target, opts.server)
        self.rate = 16000 if "G722" in opts.codecs else 8000
        self.work_dir = work_dir
        self.phase = Phase.IDLE
        self.tone_path = work_dir / "tone.wav"
        wav = WavRecorder(self.tone_path, self.rate)
        wav.write(tone_signal(opts.tone_hz, opts.seconds, self.rate))
        wav.close()
        self.rec_path = work_dir / "received.wav"
        self.ep: pj.Endpoint | None = None
        self.acc: _Account | None = None
        self.call: _Call | None = None
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.media_at: float | None = None

    def _to(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise PhaseError(f"linetest cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase

    # pjsua2 objects are reached through `self` only, never held in locals or lambdas: a
    # traceback keeps its frames' locals alive, and a pj.Call destroyed after libDestroy()
    # aborts the process (pjsua_call_set_user_data asserts on a dead library).
    def _endpoint(self) -> pj.Endpoint:
        if self.ep is None:
            raise PhaseError("linetest endpoint is not running")
        return self.ep

    def _the_call(self) -> _Call:
        if self.call is None:
            raise PhaseError("linetest has no call")
        return self.call

    def _disconnected(self) -> bool:
        return self.call is None or self.call.state == pj.PJSIP_INV_STATE_DISCONNECTED

    def _poll(self, until: Callable[[], bool], timeout: float) -> bool:
        """Run pjsua2's event loop until `until()` holds or `timeout` s pass; returns which."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() >= deadline:
                return False
            self._endpoint().libHandleEvents(10)
        return True

    # -- stages ------------------------------------------------------------------------
    def _start(self) -> None:
        self.ep = pj.Endpoint()
        # libCreate logs a few lines to fd 1 before any log config applies: drop them.
        with _fd1_to(os.devnull if self.opts.log_level == 0 else None):
            self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "plateau-linetest"
        cfg.logConfig.level = cfg.logConfig.consoleLevel = self.opts.log_level
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = self.rate
        cfg.medConfig.noVad = True  # VAD would send silence as gaps that look like loss
        cfg.medConfig.ecTailLen = 0  # an echo canceller would remove the echo we test for
        self.ep.libInit(cfg)
        host = self.opts.server[0] if self.opts.server else _uri_host(self.uri)
        self.local_ip = _local_ip_towards(host)
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        if self.local_ip != "0.0.0.0":
            tcfg.boundAddress = self.local_ip
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        wanted = [_CODEC_IDS[c] for c in self.opts.codecs]
        for ci in self.ep.codecEnum2():
            if ci.codecId.startswith("telephone-event"):
                continue
            prio = max((254 - rank for rank, w in enumerate(wanted) if ci.codecId.startswith(w)),
                       default=0)
            self.ep.codecSetPriority(ci.codecId, prio)
        acfg = pj.AccountConfig()
        acfg.sipConfig.transportId = tid
        if self.local_ip != "0.0.0.0":
            acfg.mediaConfig.transportConfig.boundAddress = self.local_ip
        if self.opts.user and self.opts.server:
            shost, sport = self.opts.server
            acfg.idUri = f"sip:{self.opts.user}@{shost}:{sport}"
            acfg.regConfig.registrarUri = f"sip:{shost}:{sport}"
            acfg.regConfig.retryIntervalSec = 0  # a refused registration stays refused
            acfg.regConfig.timeoutSec = 300
            acfg.sipConfig.proxies.append(f"sip:{shost}:{sport};lr")
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", self.opts.user, 0, self.opts.password or ""))
        else:
            acfg.idUri = f"sip:linetest@{self.local_ip}"
            acfg.regConfig.registerOnAdd = False
        self.acc = _Account()
        self.acc.create(acfg, True)

    def _register(self) -> None:
        self._to(Phase.REGISTERING)
        if not self._poll(lambda: self.acc is None or self.acc.reg_code >= 200,
                          REGISTER_TIMEOUT_S):
            raise RegistrationError(f"no answer from the registrar {self._server_text()}"
                                    f" within {REGISTER_TIMEOUT_S:.0f} s")
        if self.acc is None or self.acc.reg_code != 200:
            code, reason = (self.acc.reg_code, self.acc.reg_reason) if self.acc else (0, "")
            raise RegistrationError(f"registration as {self.opts.user} at {self._server_text()}"
                                    f" refused: {code} {reason}")

    def _server_text(self) -> str:
        return f"{self.opts.server[0]}:{self.opts.server[1]}" if self.opts.server else "?"

    def _wire(self, audio: pj.AudioMedia) -> None:
        """Media is up: tone into the call, the call into the recorder, from the same instant."""
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(str(self.tone_path), pj.PJMEDIA_FILE_NO_LOOP)
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(str(self.rec_path))
        audio.startTransmit(self.recorder)
        self.player.startTransmit(audio)
        self.media_at = time.monotonic()

    def _place_call(self) -> float:
        """INVITE the target and wait for the answer; returns the set-up time in seconds."""
        self._to(Phase.CALLING)
        if self.acc is None:
            raise PhaseError("linetest has no account")
        self.call = _Call(self.acc, self._wire)
        started = time.monotonic()
        try:
            self.call.makeCall(self.uri, pj.CallOpParam(True))
        except pj.Error as exc:
            raise TargetError(f"cannot call {self.uri}: {exc.reason}") from None
        answered = self._poll(lambda: self._disconnected() or self._the_call().confirmed_at is not None,
                              self.opts.answer_timeout)
        if not answered:
            self._the_call().hangup(pj.CallOpParam(True))  # CANCEL (RFC 3261 9.1)
            self._poll(self._disconnected, 2.0)
            raise CallFailed(f"call to {self.uri} not answered within "
                             f"{self.opts.answer_timeout:.0f} s", 0, "no answer")
        c = self._the_call()
        if self._disconnected() or c.confirmed_at is None:
            code, reason = c.code, c.reason
            hint = " (the server wants credentials: give --user and --password)" \
                if code in (401, 407) and not self.opts.user else ""
            raise CallFailed(f"call to {self.uri} failed: {code} {reason}{hint}", code, reason)
        return c.confirmed_at - started

    def _measure(self) -> StreamFigures:
        """Let the tone play (lead silence, tone, tail for the echo) and read the stream stats."""
        self._to(Phase.MEASURING)
        if not self._poll(lambda: self.media_at is not None or self._disconnected(), 3.0):
            raise CallFailed(f"call to {self.uri} answered but no audio stream came up")
        self._poll(self._disconnected, LEAD_SILENCE_S + self.opts.seconds + TAIL_S)
        if self._disconnected():
            c = self._the_call()
            raise CallFailed(f"the far end hung up during the test: {c.code} {c.reason}",
                             c.code, c.reason)
        return self._stream_figures()

    def _stream_figures(self) -> StreamFigures:
        idx = self._the_call().audio_index
        si = self._the_call().getStreamInfo(idx)
        stat = self._the_call().getStreamStat(idx)
        rtcp, jb = stat.rtcp, stat.jbuf
        rx, tx = rtcp.rxStat, rtcp.txStat

        def ms(m: pj.MathStat, field: str) -> float | None:  # pjsua2 keeps microseconds
            return float(getattr(m, field)) / 1000.0 if m.n > 0 else None

        return StreamFigures(
            codec=f"{si.codecName}/{si.codecClockRate}",
            rx_packets=int(rx.pkt), rx_lost=int(rx.loss),
            tx_packets=int(tx.pkt), tx_lost=int(tx.loss),
            rx_jitter_ms=ms(rx.jitterUsec, "mean"), rx_jitter_max_ms=ms(rx.jitterUsec, "max"),
            tx_jitter_ms=ms(tx.jitterUsec, "mean"),
            rtt_ms=ms(rtcp.rttUsec, "mean"),
            jitter_buffer_ms=float(jb.avgDelayMsec),
        )

    def _release(self) -> None:
        self._to(Phase.RELEASING)
        if not self._disconnected():
            self._the_call().hangup(pj.CallOpParam(True))
            self._poll(self._disconnected, 3.0)
        self._close_recorder()

    def _close_recorder(self) -> None:
        """Destroy the recorder; pjmedia writes the final WAV sizes when its port goes away
        (asynchronously, in 2.15), so wait until the header matches the file length."""
        if self.recorder is None:
            return
        self.recorder = None
        self.player = None

        def complete() -> bool:
            try:
                head = self.rec_path.read_bytes()[:8]
                size = self.rec_path.stat().st_size
            except OSError:
                return False
            return len(head) == 8 and int.from_bytes(head[4:8], "little") == size - 8

        self._poll(complete, 2.0)

    def shutdown(self) -> None:
        """Hang up whatever is left and destroy the endpoint; safe to call twice."""
        if self.ep is None:
            return
        self.recorder = None
        self.player = None
        try:
            self.ep.hangupAllCalls()
            for _ in range(10):
                self.ep.libHandleEvents(10)
        except pj.Error:
            pass  # the endpoint is torn down below in any case
        self.call = None
        self.acc = None
        self.ep.libDestroy()
        self.ep = None

    def run(self) -> LinetestReport:
        """Register (with --user), call, play, record, measure, hang up and assess."""
        failure: LinetestError | None = None
        try:
            return self._stages()
        except LinetestError as exc:
            failure = exc
        except pj.Error as exc:
            failure = LinetestError(f"pjsua2: {exc.info()}")
        finally:
            if self.phase is not Phase.DONE:
                self.phase = Phase.FAILED
            if failure is not None:
                # The traceback's frames may hold pjsua2 objects; drop them before libDestroy.
                failure.__traceback__ = None
            self.shutdown()
        if failure is None:
            raise PhaseError("linetest ended without a report")
        raise failure

    def _stages(self) -> LinetestReport:
        self._start()
        if self.opts.user:
            self._register()
        setup = self._place_call()
        stream = self._measure()
        self._release()
        echo = None
        if self.opts.expect_echo:
            try:  # pjmedia records mono 16-bit PCM at the conference bridge's rate
                data = load_wav(self.rec_path, self.rate)
            except WavError as exc:
                raise LinetestError(f"cannot read the recording: {exc}") from None
            echo = analyse_echo(data, self.rate, self.opts.tone_hz, self.opts.seconds)
        self._to(Phase.DONE)
        return assess(self.uri, self.opts.user, setup, stream, echo)


def run_linetest(opts: LinetestOptions) -> LinetestReport:
    """Run one test call (in a temporary directory for the tone and the recording)."""
    with tempfile.TemporaryDirectory(prefix="plateau-linetest-") as tmp, _fd1_to(None):
        return LineTester(opts, Path(tmp)).run()


@contextlib.contextmanager
def _fd1_to(path: str | None) -> Iterator[None]:
    """Point file descriptor 1 at `path` (None: stderr) for the block.

    pjlib logs to fd 1; while pjsua2 runs, stdout must carry the report alone.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    target = os.open(path, os.O_WRONLY) if path else os.dup(2)
    try:
        os.dup2(target, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(target)


def cli(args: argparse.Namespace) -> int:
    """`plateau linetest` with the argparse namespace from appliance.cli; returns the exit code."""
    try:
        server = parse_server(args.server) if getattr(args, "server", None) else None
        opts = LinetestOptions(
            target=args.target, server=server, user=args.user, password=args.password,
            seconds=float(args.seconds), tone_hz=float(args.tone), expect_echo=bool(args.expect_echo),
            codecs=tuple(c.strip().upper() for c in args.codecs.split(",") if c.strip()),
            log_level=int(args.log_level),
        )
        report = run_linetest(opts)
    except LinetestError as exc:
        print(f"plateau linetest: {exc}", file=sys.stderr)
        return exc.exit_code
    print(format_report(report))
    return EXIT_PASS if report.passed else EXIT_FAIL
