"""``python -m fbctrl.book run|list``: see :mod:`fbctrl.book.runner`."""

import sys

from .runner import main

sys.exit(main())
