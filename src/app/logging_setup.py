"""structlog configuration: events to stderr (stdout stays clean for `--json`), JSON unless in a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, level: str = "WARNING", json_output: bool | None = None) -> None:
    """Route structlog and stdlib logs to stderr at `level`; JSON lines when stderr is not a terminal."""
    as_json = not sys.stderr.isatty() if json_output is None else json_output
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
