"""``python -m connector.cli``."""

import sys

from connector.cli.main import main

sys.exit(main())
