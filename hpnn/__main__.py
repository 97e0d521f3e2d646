"""``python -m hpnn train``."""

import sys

from hpnn.cli import main

sys.exit(main())
