"""Answering-machine detection accuracy on generated human-like and machine-like answers.

    python bench/amd_accuracy.py [--per-class 100] [--edge 10] [--seed 1] [--target 0.90]
        [--cache-dir DIR] [--show-errors] [--fixed-threshold]

Builds the seeded set of ``tests/amd_corpus.py`` (espeak-ng speech through G.711, line noise),
runs ``appliance.dialer.amd.classify`` with the default (Asterisk) parameters on every sample,
and prints the confusion matrix (NOTSURE counts as wrong for both classes: the dialer hands it to
an agent), accuracy, per-class precision and recall, decision times, and the edge cases against
the verdict each is expected to get. Exits 1 when main-set accuracy is below ``--target`` or a
class's recall below ``amd_corpus.STATED_RECALL``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.dialer.amd import AmdParams, AmdResult, Verdict, classify
from tests import amd_corpus
from tests.amd_corpus import Sample

TARGET = amd_corpus.STATED_ACCURACY  # tests/unit/test_amd.py checks the same figure


def evaluate(samples: list[Sample], params: AmdParams) -> list[tuple[Sample, AmdResult]]:
    """Each sample with its verdict."""
    return [(s, classify(s.audio, params)) for s in samples]


def summarise(results: list[tuple[Sample, AmdResult]]) -> dict[str, float]:
    """Accuracy and per-class precision/recall over the human/machine samples."""
    figures: dict[str, float] = {}
    right = sum(1 for s, r in results if r.verdict == s.expected)
    figures["accuracy"] = right / len(results) if results else 0.0
    for v in (Verdict.HUMAN, Verdict.MACHINE):
        said = [s for s, r in results if r.verdict == v]
        truly = [s for s, _ in results if s.expected == v]
        hits = sum(1 for s in said if s.expected == v)
        figures[f"precision_{v.value}"] = hits / len(said) if said else 0.0
        figures[f"recall_{v.value}"] = hits / len(truly) if truly else 0.0
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--edge", type=int, default=10, help="samples per edge-case group")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", type=float, default=TARGET)
    ap.add_argument("--cache-dir", type=Path, help="keep rendered speech here (default: a temp dir)")
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--fixed-threshold", action="store_true", help="Asterisk's fixed threshold, no noise floor")
    args = ap.parse_args()
    params = AmdParams(noise_floor=not args.fixed_threshold)

    with tempfile.TemporaryDirectory(prefix="amd-corpus-") as tmp:
        cache = args.cache_dir or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        main_set = amd_corpus.main_set(cache, args.per_class, args.seed)
        edges = amd_corpus.edge_cases(cache, args.edge, args.seed)
        built = time.perf_counter() - t0
        rendered = len(list(cache.glob("amd-*.wav")))
    t0 = time.perf_counter()
    results = evaluate(main_set, params)
    edge_results = evaluate(edges, params)
    cpu = time.perf_counter() - t0
    audio_s = sum(s.audio.size for s in main_set + edges) / amd_corpus.RATE

    print(f"corpus: {len(main_set)} main samples + {len(edges)} edge cases, seed {args.seed}; built in "
          f"{built:.1f} s ({rendered} distinct espeak-ng renderings)")
    print(f"detector: {cpu:.2f} s for {audio_s:.0f} s of audio ({1000 * cpu / audio_s:.2f} ms per audio second)")
    print(f"params: {params}")
    print()
    print("main set       said HUMAN  said MACHINE  said NOTSURE")
    for label, v in (("human", Verdict.HUMAN), ("machine", Verdict.MACHINE)):
        row = [sum(1 for s, r in results if s.expected == v and r.verdict == said) for said in Verdict]
        print(f"  {label:<12} {row[0]:>10}  {row[1]:>12}  {row[2]:>12}")
    f = summarise(results)
    print(f"accuracy {100 * f['accuracy']:.1f} %  (target {100 * args.target:.0f} %)")
    for name in ("HUMAN", "MACHINE"):
        print(f"  {name:<8} precision {100 * f['precision_' + name]:.1f} %  recall {100 * f['recall_' + name]:.1f} %")
    for label, v in (("human", Verdict.HUMAN), ("machine", Verdict.MACHINE)):
        done = [r.decided_at_ms for s, r in results if s.expected == v]
        after = [r.decided_at_ms - s.speech_ms for s, r in results if s.expected == v]
        print(f"  decision time {label:<8} median {statistics.median(done):.0f} ms from answer, "
              f"{statistics.median(after):.0f} ms from first speech (max {max(done)} ms)")
    causes: dict[str, int] = {}
    for _, r in results:
        causes[r.kind] = causes.get(r.kind, 0) + 1
    print("  causes: " + ", ".join(f"{k} {n}" for k, n in sorted(causes.items())))
    print()
    print("edge cases (expected verdict, why): hits/total, causes")
    for group, (want, why) in amd_corpus.EDGE_EXPECTATIONS.items():
        rs = [r for s, r in edge_results if s.group == group]
        hits = sum(1 for r in rs if r.verdict == want)
        kinds = sorted({r.kind for r in rs})
        print(f"  {group:<16} {want.value:<8} {hits}/{len(rs)}  {','.join(kinds):<28} {why}")
    if args.show_errors:
        print()
        for s, r in results + edge_results:
            if r.verdict != s.expected:
                print(f"  WRONG {s.name}: {r.verdict.value} {r.cause} words={r.words} "
                      f"greeting={r.greeting_ms} ms  {s.text}")
    recall = min(f["recall_HUMAN"], f["recall_MACHINE"])
    ok = f["accuracy"] >= args.target and recall >= amd_corpus.STATED_RECALL
    print()
    print("PASS" if ok else "FAIL", f"accuracy {100 * f['accuracy']:.1f} % vs target {100 * args.target:.0f} %, "
          f"lowest recall {100 * recall:.1f} % vs {100 * amd_corpus.STATED_RECALL:.0f} %")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
