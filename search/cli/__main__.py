"""``python -m search.cli``: the ``foodvec`` command."""

import sys

from search.cli import main

sys.exit(main())
