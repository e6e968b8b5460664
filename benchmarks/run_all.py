"""Run every `benchmarks/bench_*.py`, each in its own process, passing the arguments on.

python benchmarks/run_all.py            # full runs
python benchmarks/run_all.py --quick    # smoke runs, under a minute in all
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run each benchmark script in turn; return 1 if any of them failed."""
    failed = []
    for script in sorted(Path(__file__).resolve().parent.glob("bench_*.py")):
        print(f"== {script.name} {' '.join(argv)}".rstrip(), flush=True)
        # A fresh interpreter per benchmark: torch's thread settings and the imported
        # frameworks' global state do not leak from one benchmark into the next.
        if subprocess.run([sys.executable, str(script), *argv]).returncode != 0:
            failed.append(script.name)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
