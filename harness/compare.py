"""``python -m harness.compare``: comparing two campaigns; the code lives in ``harness.cli.compare``."""

import sys

from harness.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
