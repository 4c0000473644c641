"""``python -m agentos_mw`` runs the ``agentos-mw`` command."""

import sys

from .cli import main

sys.exit(main())
