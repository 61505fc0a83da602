"""The one harness every fuzz target shares.

A target is a function of the fuzzer's bytes plus the error types its parser documents for bad
input (its contract). Any other exception is a crash: libFuzzer stops and writes the input that
caused it. A hang is one input taking longer than ``-timeout`` seconds (10 unless given).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
#: Only our code and the SIP stack are instrumented for coverage: numpy, yaml and the standard
#: library would only slow each run and crowd the coverage map.
INSTRUMENTED = ["appliance", "hw", "sippy"]


@dataclass(frozen=True)
class Target:
    """One fuzz target: ``one_input`` may raise only ``expected`` (the parser's contract)."""

    name: str
    contract: str
    one_input: Callable[[bytes], None]
    expected: tuple[type[BaseException], ...] = ()

    def check(self, data: bytes) -> None:
        """Run one input; an exception outside the contract propagates (a crash)."""
        try:
            self.one_input(data)
        except self.expected:
            pass

    @property
    def corpus(self) -> Path:
        return CORPUS / self.name


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import the code under test inside this block so that atheris sees its coverage."""
    with atheris.instrument_imports(include=INSTRUMENTED):
        yield


def main(target: Target, argv: list[str] | None = None) -> None:
    """``python -m fuzz.NAME [libFuzzer flags] [corpus dirs]``: fuzz until a crash or a limit."""
    args = list(sys.argv if argv is None else argv)
    if not any(a.startswith("-timeout=") for a in args):
        args.append("-timeout=10")
    atheris.Setup(args, target.check)
    atheris.Fuzz()


def scratch(prefix: str) -> Path:
    """A directory for a target's store or data dir. libFuzzer ends the process with exit(),
    so nothing cleans up: runs put it under $PLATEAU_FUZZ_TMP (a test's tmp_path, .fuzz/tmp)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("PLATEAU_FUZZ_TMP")))


def text(data: bytes) -> str:
    """Fuzzer bytes as the text a socket or file reader would hand the parser."""
    return data.decode("utf-8", "replace")
