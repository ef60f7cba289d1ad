"""Write standard input to a log file that rotates by size: the service's output, so that its log never
outgrows the disk.

    salespulse serve run ... > >(python scripts/rotating_log.py data/service.log) 2>&1 &

(scripts/service.sh does this.) Python's RotatingFileHandler keeps the file under
SALESPULSE_SERVICE_LOG_MAX_BYTES and the SALESPULSE_SERVICE_LOG_BACKUPS newest rotated files beside it
(service.log.1 is the newest). Every process of the service writes to the one pipe, so there is one writer
and rotation never races. The writer outlives the terminal that started it (it ignores SIGHUP and SIGINT,
like the service it logs for) and ends when the last process of the service closes the pipe.
"""

from __future__ import annotations

import logging
import signal
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from salespulse.config import get_settings


def rotating_handler(path: Path, max_bytes: int, backups: int) -> RotatingFileHandler:
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))  # the lines are formatted already
    return handler


def copy_lines(source: object, handler: RotatingFileHandler) -> None:
    """Each line of ``source`` (a binary stream) into the handler, flushed at once (a crash loses nothing
    that was written)."""
    for raw in source:  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace").rstrip("\n")
        handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: rotating_log.py LOG_FILE  (reads standard input)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = get_settings()
    path = Path(argv[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = rotating_handler(path, settings.service_log_max_bytes, settings.service_log_backups)
    try:
        copy_lines(sys.stdin.buffer, handler)
    finally:
        handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
