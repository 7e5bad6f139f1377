import sys

from unidl.cli import main

sys.exit(main())
