"""``python -m weightmem_fast ...`` is the ``weightmem-fast`` command (``torchrun -m weightmem_fast audit ...``)."""
import sys

from .cli import main

sys.exit(main())
