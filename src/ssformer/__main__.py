"""``python -m ssformer`` runs the command line (used by notebooks and background jobs)."""

import sys

from ssformer.cli import main

sys.exit(main())
