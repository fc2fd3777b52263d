import sys

from dcrcoadd.cli import main

sys.exit(main())
