"""Fails when a benchmark figure got more than 2x worse than the committed results.

    .venv/bin/python bench/check.py bench/results/current.json [--baseline bench/results/latest.json] [--factor 2]

Compares each figure's value (see bench/run.py: median, or the worst run where one bad run
counts) with the same figure in the baseline. "Worse" follows the figure: slower, bigger, more
calls, or, for throughput, fewer requests per second. Exits 1 naming every figure that regressed
by more than the factor; figures missing on either side are listed and not judged. Changes of
time below SECONDS_NOISE_FLOOR are ignored: a 10 ms figure turning into 25 ms is noise.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BASELINE = Path(__file__).resolve().parent / "results" / "latest.json"
SECONDS_NOISE_FLOOR = 0.05


@dataclass(frozen=True)
class Comparison:
    key: str
    label: str
    unit: str
    baseline: float
    current: float
    better: str

    @property
    def worse_by(self) -> float:
        """How many times worse the current value is (below 1: it got better)."""
        if self.better == "higher":
            return _ratio(self.baseline, self.current)
        return _ratio(self.current, self.baseline)

    def regressed(self, factor: float) -> bool:
        if self.unit == "s" and abs(self.current - self.baseline) < SECONDS_NOISE_FLOOR:
            return False
        return self.worse_by > factor

    def describe(self) -> str:
        how = "was zero" if self.worse_by == float("inf") else f"{self.worse_by:.1f}x worse"
        return f"{self.key}: {self.label}: {self.current:g} {self.unit} against {self.baseline:g} {self.unit} ({how})"


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return 1.0 if numerator == 0 else float("inf")
    return numerator / denominator


def load_figures(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {key: figure for key, figure in data.get("figures", {}).items() if figure.get("value") is not None}


def compare(current: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]]) -> list[Comparison]:
    return [
        Comparison(key=key, label=figure["label"], unit=figure["unit"], baseline=baseline[key]["value"],
                   current=figure["value"], better=figure.get("better", "lower"))
        for key, figure in current.items() if key in baseline
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("current", type=Path, help="results of a fresh run (bench/run.py --out ...)")
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="the committed results")
    parser.add_argument("--factor", type=float, default=2.0, help="how many times worse fails (default 2)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    current, baseline = load_figures(args.current), load_figures(args.baseline)
    comparisons = compare(current, baseline)
    regressions = [c for c in comparisons if c.regressed(args.factor)]
    not_judged = sorted(set(current) ^ set(baseline))
    print(f"bench-check: {len(comparisons)} figures compared with {args.baseline}")
    if not_judged:
        print(f"bench-check: not judged (only on one side): {', '.join(not_judged)}")
    for regression in regressions:
        print(f"REGRESSED {regression.describe()}")
    if regressions:
        print(f"bench-check: {len(regressions)} figure(s) more than {args.factor:g}x worse")
        return 1
    print(f"bench-check: no figure more than {args.factor:g}x worse")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
