"""`python -m invrecon.pipelines.report ...` is `invrecon report ...`."""

import sys

from invrecon.pipelines.report.cli import main

sys.exit(main())
