"""`python -m leadsync.cli`, as the tests and the service's supervisors run it."""

import sys

from leadsync.cli import main

sys.exit(main())
