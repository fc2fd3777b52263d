"""``python -m benchmarks``: run the validation and benchmark suite (see `benchmarks.run`)."""

import sys

from benchmarks.run import main

sys.exit(main())
