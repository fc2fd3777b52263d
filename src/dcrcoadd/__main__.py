import sys

from dcrcoadd._entry import main

sys.exit(main())
