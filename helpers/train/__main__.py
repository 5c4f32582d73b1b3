"""`python -m helpers.train ...`: the command line of `helpers.cli` (see `--help`)."""

import sys

from torch.distributed.elastic.multiprocessing.errors import record

from helpers.cli import main

sys.exit(record(main)())  # record: under torchrun, a failing rank's traceback goes to the summary
