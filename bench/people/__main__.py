"""``python -m bench.people``: the command line (``bench.people.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
