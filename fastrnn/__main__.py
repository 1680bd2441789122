"""`python -m fastrnn train|sample ...`: the `fastrnn` command."""

import sys

from .cli import main

sys.exit(main())
