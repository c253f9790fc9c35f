"""``python -m harness.store compact|migrate|check``: the command line lives in ``harness.cli.store``
(this forwarding line is the one upward import the layer contract allows)."""

import sys

from harness.cli.store import main

sys.exit(main())
