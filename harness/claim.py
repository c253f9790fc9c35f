"""``python -m harness.claim``: state a record claim about stored runs; the code lives in ``harness.cli.claim``."""

import sys

from harness.cli.claim import main

if __name__ == "__main__":
    sys.exit(main())
