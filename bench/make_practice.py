"""Build the practice competitions of tasks/backends/practice_layouts.py at full size from ../shared/data.

    .venv/bin/python -m bench.make_practice OUT [--limit N] [--name COMPETITION ...]

writes OUT/<competition>.zip and OUT/<competition>-solution.csv for each, from cifar10-dev (cifar-10.zip: its
10,000 training images) and mnist-dev (digit-recognizer.zip: its 42,000 training rows), then prints the
`headstart local create` command of each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.backends.practice_layouts import PRACTICE, build_practice, cifar_source, digit_pairs, mnist_source

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="images taken from each source (default: all)")
    parser.add_argument("--name", action="append", choices=sorted(PRACTICE), help="only these (default: all)")
    parser.add_argument("--shared", type=Path, default=SHARED)
    arguments = parser.parse_args()
    names = arguments.name or list(PRACTICE)
    kinds = {PRACTICE[name][1] for name in names}
    sources = {}
    if "cifar" in kinds:
        sources["cifar"] = cifar_source(arguments.shared / "cifar10-dev" / "cifar-10.zip", arguments.limit)
    if kinds & {"mnist", "digit-pairs"}:
        sources["mnist"] = mnist_source(arguments.shared / "mnist-dev" / "digit-recognizer.zip", arguments.limit)
        sources["digit-pairs"] = digit_pairs(sources["mnist"], len(sources["mnist"].labels))
    for name in names:
        archive, solution = build_practice(name, sources[PRACTICE[name][1]], arguments.out)
        print(f"headstart local create {name} --from {archive} --solution {solution}")


if __name__ == "__main__":
    main()
