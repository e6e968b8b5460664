"""`python -m fulmen new NAME`: the `fulmen` command, for when its script is not on PATH."""

from __future__ import annotations

import sys

from fulmen.scaffold import main

if __name__ == "__main__":
    sys.exit(main())
