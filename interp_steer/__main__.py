"""``python -m interp_steer ...`` runs the ``interp-steer`` command line."""

import sys

from interp_steer.cli import main

sys.exit(main())
