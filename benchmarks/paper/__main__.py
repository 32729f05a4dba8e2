"""``python -m benchmarks.paper <command>``: see :mod:`benchmarks.paper.cli`."""

import sys

from benchmarks.paper.cli import main

sys.exit(main())
