"""`python -m tests.chaos [--seed N ...] [--runs K] [--duration S] [--workdir DIR] [--keep]`."""

import sys

from .driver import main

sys.exit(main())
