"""``python -m ketacore``: the ``ketacore`` command line (the same entry point as the console
script, :func:`ketacore.cli.main`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
