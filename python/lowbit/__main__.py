"""python -m lowbit: the lowbit command."""
import sys

from .tools.cli import main

sys.exit(main())
