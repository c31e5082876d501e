"""pgqueuer's worker without its CLI (`pgq run` 1.6 trips on the typer/click versions pip resolves):
`pgq_worker.py BATCH_SIZE drain|continuous`."""
import asyncio
import logging
import sys

import pgqueuer
from pgqueuer.types import QueueExecutionMode

from pgq_app import main

logging.basicConfig(level=logging.WARNING)
asyncio.run(pgqueuer.run(main, batch_size=int(sys.argv[1]), mode=QueueExecutionMode[sys.argv[2]]))
