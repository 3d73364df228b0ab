import sys

from doppel.cli import main

sys.exit(main())
