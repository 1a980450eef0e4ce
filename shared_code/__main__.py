"""`python -m shared_code`: the admin CLI (see shared_code/cli.py)."""
import sys

from shared_code.surfaces.cli import main

sys.exit(main())
