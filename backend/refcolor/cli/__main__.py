"""`python -m refcolor.cli`: the same as the `refcolor` command."""

import sys

from refcolor.cli import main

sys.exit(main())
