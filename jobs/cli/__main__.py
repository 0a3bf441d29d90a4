"""``python -m jobs.cli``: the ``lie-sweep`` command (what submitted jobs run)."""

import sys

from jobs.cli import main

sys.exit(main())
