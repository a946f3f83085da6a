"""`python -m shims.cli ...`: the `turnout` command without its console script."""

import sys

from shims.cli import main

sys.exit(main())
