"""`python -m dedupe`: the same as the venv-dedupe command."""

import sys

from .cli import main

sys.exit(main())
