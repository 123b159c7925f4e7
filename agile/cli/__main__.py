"""``python -m agile.cli`` runs the ``agile`` command."""

import sys

from agile.cli import main

sys.exit(main())
