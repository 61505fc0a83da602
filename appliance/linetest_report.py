"""Pure analysis and report of `plateau linetest`: target URIs, the test tone, echo detection,
the one-way delay choice, the E-model assessment and the printed report.

Separate from appliance.linetest (the pjsua2 phone, its state machine and the CLI entry) because
nothing here touches pjsua2 or does I/O: these functions work on numbers and numpy arrays, so
tests/unit/test_emodel.py exercises them without a SIP stack, a network or a sound device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from appliance import emodel
from appliance.media.dtmf import goertzel_power

# Exit codes of `plateau linetest`.
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_REGISTRATION, EXIT_CALL = 0, 1, 2, 3, 4

LEAD_SILENCE_S = 0.5  # silence before the tone, so the echo onset measures the round trip
SILENCE_RMS = 30.0  # int16 units, about -60 dBFS: quieter frames carry no signal
TONE_PURITY = 0.5  # share of a frame's power at the test frequency for a "tone" frame
TONE_AMPLITUDE = 8000  # about -12 dBFS, well inside G.711's range
PACKET_MS = 20.0  # pjmedia's default ptime for G.711 and G.722
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_SIP_URI = re.compile(r"^sips?:(?:[^@\s<>]+@)?[A-Za-z0-9.\-]+(?::\d{1,5})?(?:;[^\s<>]*)?$")


class LinetestError(Exception):
    """The test could not be run to the end; `exit_code` says which stage failed."""

    exit_code = EXIT_FAIL


class TargetError(LinetestError):
    """TARGET or an option is not usable (not an extension, a number or a SIP URI...)."""

    exit_code = EXIT_USAGE


class RegistrationError(LinetestError):
    """The registrar refused the extension or never answered."""

    exit_code = EXIT_REGISTRATION


class CallFailed(LinetestError):
    """The call ended before or during the test; carries the final SIP status."""

    exit_code = EXIT_CALL

    def __init__(self, message: str, sip_code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.sip_code = sip_code
        self.reason = reason

@dataclass(frozen=True, slots=True)
class StreamFigures:
    """RTP/RTCP figures of the call's audio stream (pjsua2 StreamStat, RFC 3550 6.4.1)."""

    codec: str
    rx_packets: int
    rx_lost: int
    tx_packets: int
    tx_lost: int  # as the far end reported it in RTCP (0 until a report arrives)
    rx_jitter_ms: float | None  # mean interarrival jitter, None before pjmedia sampled it
    rx_jitter_max_ms: float | None
    tx_jitter_ms: float | None  # from the far end's reports
    rtt_ms: float | None  # RTCP LSR/DLSR round trip, None without a report on our SR
    jitter_buffer_ms: float  # mean delay of our jitter buffer

    @property
    def rx_loss_percent(self) -> float:
        total = self.rx_packets + self.rx_lost
        return 100.0 * self.rx_lost / total if total else 0.0

    @property
    def tx_loss_percent(self) -> float:
        return 100.0 * self.tx_lost / self.tx_packets if self.tx_packets else 0.0


@dataclass(frozen=True, slots=True)
class EchoCheck:
    """What the recording says about the tone coming back."""

    purity: float  # share of the received power at the tone frequency, from the tone's onset
    tone_seconds: float  # how long the tone was heard
    round_trip_ms: float | None  # onset of the echoed tone minus the lead silence
    passed: bool


@dataclass(frozen=True, slots=True)
class LinetestReport:
    """Everything `plateau linetest` prints."""

    target_uri: str
    registered_as: str | None
    setup_s: float
    stream: StreamFigures
    echo: EchoCheck | None
    one_way_ms: float
    delay_source: str
    rating: emodel.Rating

    @property
    def passed(self) -> bool:
        return self.echo is None or self.echo.passed


def target_uri(target: str, server: tuple[str, int] | None) -> str:
    """The request URI for TARGET: a SIP URI as given, or an extension/number at the server."""
    target = target.strip()
    if target.lower().startswith(("sip:", "sips:")):
        if not _SIP_URI.match(target):
            raise TargetError(f"{target!r} is not a valid SIP URI (sip:user@host[:port])")
        return target
    if not _NUMBER.match(target):
        raise TargetError(
            f"{target!r} is not an extension, a phone number or a sip: URI"
        )
    if server is None:
        raise TargetError(f"calling {target!r} needs --server HOST:PORT (or give a sip: URI)")
    host, port = server
    # '#' is not allowed unescaped in a SIP user part (RFC 3261 25.1, "user" rule).
    return f"sip:{target.replace('#', '%23')}@{host}:{port}"


def parse_server(text: str) -> tuple[str, int]:
    """HOST[:PORT] (port 5060 by default) for --server."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = text, "5060"
    if not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise TargetError(f"--server {text!r}: expected HOST:PORT, e.g. 192.0.2.10:5060")
    return host, int(port_s)


def tone_signal(freq: float, seconds: float, rate: int, lead_s: float = LEAD_SILENCE_S) -> np.ndarray:
    """int16: `lead_s` of silence, then a sine of `freq` Hz for `seconds`."""
    if not 0 < freq < rate / 2:
        raise TargetError(f"--tone {freq} Hz must be between 0 and {rate // 2} Hz")
    n = np.arange(round(seconds * rate), dtype=np.float64)
    tone = np.rint(TONE_AMPLITUDE * np.sin(2 * math.pi * freq * n / rate)).astype(np.int16)
    return np.concatenate((np.zeros(round(lead_s * rate), np.int16), tone))


def analyse_echo(
    samples: np.ndarray, rate: int, freq: float, played_s: float, lead_s: float = LEAD_SILENCE_S
) -> EchoCheck:
    """Did the tone come back? Frame-wise Goertzel power over the recording (20 ms frames).

    A frame is "tone" when it is above silence and at least TONE_PURITY of its power sits at
    `freq`. Passed when the tone was heard for at least half the time it was played and,
    from its onset on, carries at least TONE_PURITY of all received power.
    """
    frame = rate // 50
    nframes = samples.size // frame
    if nframes == 0:
        return EchoCheck(0.0, 0.0, None, False)
    x = np.asarray(samples[: nframes * frame], dtype=np.float64).reshape(nframes, frame)
    power = np.mean(x**2, axis=1)
    # goertzel_power gives |X(f)|^2; a sine of amplitude A gives (A N / 2)^2, so
    # 2 |X|^2 / N^2 is its mean power A^2 / 2, comparable with `power`.
    at_tone = 2.0 * goertzel_power(x, np.array([freq]), rate)[:, 0] / frame**2
    loud = power >= SILENCE_RMS**2
    tone = loud & (at_tone >= TONE_PURITY * power)
    hits = np.nonzero(tone)[0]
    if hits.size == 0:
        return EchoCheck(0.0, 0.0, None, False)
    onset = int(hits[0])
    total = float(np.sum(power[onset:]))
    purity = min(1.0, float(np.sum(at_tone[onset:])) / total) if total > 0 else 0.0
    tone_s = hits.size * frame / rate
    # Sample-accurate onset: the first sample reaching half the tone's peak, searched from the
    # frame before the first tone frame (the tone may start late in that one).
    peak = float(np.max(np.abs(x[hits])))
    start = max(0, onset - 1) * frame
    window = np.abs(np.asarray(samples[start:(onset + 1) * frame], dtype=np.float64))
    first = start + int(np.argmax(window >= 0.5 * peak))
    round_trip = first / rate * 1000.0 - lead_s * 1000.0
    passed = tone_s >= 0.5 * played_s and purity >= TONE_PURITY
    return EchoCheck(purity, tone_s, round_trip if round_trip >= 0 else None, passed)


def one_way_delay(stream: StreamFigures, echo: EchoCheck | None) -> tuple[float, str]:
    """Mouth-to-ear delay Ta for the E-model and where it came from.

    Best is half the audio round trip of an echo (it holds every buffer on the path); else
    half the RTCP round trip plus one packet and our jitter buffer; else those two alone.
    """
    if echo is not None and echo.round_trip_ms is not None:
        return echo.round_trip_ms / 2.0, "half the echo round trip"
    local = PACKET_MS + stream.jitter_buffer_ms
    if stream.rtt_ms is not None:
        return stream.rtt_ms / 2.0 + local, "RTCP round trip / 2 + packet + jitter buffer"
    return local, "packet + jitter buffer only (no RTCP round trip yet)"


def assess(target: str, registered_as: str | None, setup_s: float, stream: StreamFigures,
           echo: EchoCheck | None) -> LinetestReport:
    """Put the measurements through the E-model (worse direction's loss)."""
    delay, source = one_way_delay(stream, echo)
    loss = max(stream.rx_loss_percent, stream.tx_loss_percent)
    rating = emodel.rate(emodel.codec_impairment(stream.codec), delay, loss)
    return LinetestReport(target, registered_as, setup_s, stream, echo, delay, source, rating)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def format_report(rep: LinetestReport) -> str:
    """The human-readable report."""
    st, rt = rep.stream, rep.rating
    who = f"registered as {rep.registered_as}" if rep.registered_as else "not registered"
    lines = [
        f"Line test to {rep.target_uri} ({who})",
        f"  call set-up    {rep.setup_s * 1000:.0f} ms (INVITE to answer)",
        f"  codec          {st.codec}",
        f"  received       {st.rx_packets} packets, lost {st.rx_lost} ({st.rx_loss_percent:.1f} %)",
        f"  sent           {st.tx_packets} packets, far end reports lost {st.tx_lost}"
        f" ({st.tx_loss_percent:.1f} %)",
        f"  jitter         rx mean {_ms(st.rx_jitter_ms)}, max {_ms(st.rx_jitter_max_ms)};"
        f" tx (far end) {_ms(st.tx_jitter_ms)}",
        f"  jitter buffer  {st.jitter_buffer_ms:.0f} ms",
        f"  RTCP round trip {_ms(st.rtt_ms)}"
        + ("" if st.rtt_ms is not None else " (no RTCP report on our sender report yet: RTCP runs"
           " every ~5 s, RFC 3550 6.2; a longer --seconds gets one)"),
    ]
    if rep.echo is not None:
        e = rep.echo
        lines.append(f"  echo           tone heard {e.tone_seconds:.2f} s, purity {e.purity:.2f},"
                     f" audio round trip {_ms(e.round_trip_ms)}")
    lines += [
        f"  one-way delay  {rep.one_way_ms:.0f} ms ({rep.delay_source})",
        f"  E-model        R {rt.r:.1f}  MOS {rt.mos:.2f} ({emodel.satisfaction(rt.r)});"
        f" {rt.codec.name}, loss {rt.loss_percent:.1f} %, Idd {rt.idd:.1f}, Ie,eff {rt.ie_eff:.1f}",
    ]
    if rep.echo is not None:
        lines.append("RESULT: PASS" if rep.passed else "RESULT: FAIL (the tone did not come back)")
    else:
        lines.append("RESULT: call completed (no echo check requested)")
    return "\n".join(lines)
