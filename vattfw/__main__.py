"""``python -m vattfw`` = the ``vattfw`` command (what ``torchrun ... -m vattfw run SPEC`` starts)."""
import sys

from .cli import main

sys.exit(main())
