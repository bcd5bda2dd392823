"""``python -m ttdnet`` and ``accelerate launch -m ttdnet`` entry point."""

import sys

from ttdnet.cli import main


if __name__ == "__main__":
    sys.exit(main())
