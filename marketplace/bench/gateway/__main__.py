"""``python -m marketplace.bench.gateway``: run the gateway benchmark (see the package)."""

import sys

from marketplace.bench.gateway.command import main

sys.exit(main())
