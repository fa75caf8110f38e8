"""`python -m pipelines.report`."""
import sys

from pipelines.report.command import main

sys.exit(main())
