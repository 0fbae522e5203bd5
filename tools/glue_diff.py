"""Compare the glued values of two folders of executed chapters (a refactor's before/after).

    python tools/glue_diff.py BEFORE AFTER [--ignore seconds,minutes]
    python tools/glue_diff.py BEFORE/ch1_open_closed.ipynb AFTER/   # one chapter

Every named glue output is compared by its text forms (text/plain and text/markdown; figures
are skipped). Names containing an ``--ignore`` word (wall times) are left out. Prints each
difference and exits 1 if there is one; a name glued on one side only is a difference too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from closedloop.report import glued_texts as glued

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", default="seconds,minutes,wall",
                    help="comma-separated words; glue names containing one are skipped")
    args = ap.parse_args(argv)
    skip = [w for w in args.ignore.split(",") if w]
    n_diff = n_same = 0
    paths = [args.before] if args.before.is_file() else sorted(args.before.glob("*.ipynb"))
    for path in paths:
        other = args.after / path.name if args.after.is_dir() else args.after
        if not other.exists():
            print(f"{path.name}: missing in {args.after}")
            n_diff += 1
            continue
        a, b = glued(path), glued(other)
        for name in sorted(set(a) | set(b)):
            if any(w in name for w in skip):
                continue
            if a.get(name) != b.get(name):
                n_diff += 1
                print(f"{path.stem}.{name}:\n  before {a.get(name)}\n  after  {b.get(name)}")
            else:
                n_same += 1
    print(f"{n_same} glued values identical, {n_diff} differ")
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
