"""``python -m harness.study``: the study CLI; the code lives in ``harness.cli.study``."""

import sys

from harness.cli.study import main

if __name__ == "__main__":
    sys.exit(main())
