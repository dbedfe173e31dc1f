"""`nodeloom serve` (or any command) with the test node types too (`sleep`, …).

Usage: python -m tests.support.serve_test_nodes serve --port … --db …
"""

from __future__ import annotations

import sys

from server.cli import main
from tests.support.nodes import test_registry

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], registry=test_registry()))
