"""``python -m benchmarks [--quick] [--only NAME ...] [--network] [--out DIR]``.

Runs every ``benchmarks/bench_*.py`` module's ``run(quick)`` in-process, prints the markdown
tables, writes them to ``benchmarks/results/``, and exits 1 when a quick-mode gate fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import pkgutil
import sys
import time
from pathlib import Path

from . import harness

HERE = Path(__file__).parent
ORDER = ["baseline", "jwt", "rbac", "ratelimit", "observability", "stack", "streaming"]


def bench_modules() -> list[str]:
    found = [
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("bench_")
    ]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run with pass/fail gates (CI)")
    parser.add_argument(
        "--only", nargs="*", default=None, help=f"subset of: {', '.join(bench_modules())}"
    )
    parser.add_argument("--network", action="store_true", help="also run the uvicorn load test")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="where tables are written"
    )
    args = parser.parse_args(argv)

    names = args.only if args.only else bench_modules()
    unknown = set(names) - set(bench_modules()) - {"network"}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "full"
    header = (
        f"Measured {dt.date.today().isoformat()} on {harness.machine()}; "
        f"command: `python -m benchmarks{' --quick' if args.quick else ''}"
        f"{' --network' if args.network else ''}`."
    )
    sections = [f"## agentos_mw benchmarks ({mode})", "", header, ""]
    failures: list[str] = []
    started = time.perf_counter()
    for name in names:
        if name == "network":
            continue
        module = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        section, failed = module.run(quick=args.quick)
        print(section, f"\n({name}: {time.perf_counter() - t0:.1f} s)\n", flush=True)
        sections += [section, ""]
        failures += [f"[{name}] {message}" for message in failed]
    if args.network or "network" in names:
        from . import network

        section = network.run(quick=args.quick)
        print(section, flush=True)
        sections += [section, ""]
    elapsed = time.perf_counter() - started
    sections.append(f"Total benchmark time: {elapsed:.0f} s.")
    args.out.mkdir(parents=True, exist_ok=True)
    # A subset never overwrites the complete results file.
    suffix = "" if args.only is None else "-" + "-".join(names)
    target = args.out / f"{mode}{suffix}.md"
    target.write_text("\n".join(sections) + "\n", encoding="utf-8")
    print(f"written to {target}")
    if failures:
        print("\nGATES FAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print("all gates passed" if args.quick else "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
