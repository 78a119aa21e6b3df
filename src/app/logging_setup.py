"""structlog configuration: events to stderr (stdout stays clean for `--json`), JSON unless in a terminal.

Every line, structlog's and the standard library's (tracebacks and chained exceptions included), goes through
the secret masker last, so no configured secret or part of one reaches the log whatever a server echoed back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog

Mask = Callable[[str], str]


def configure_logging(*, level: str = "WARNING", json_output: bool | None = None, mask: Mask | None = None) -> None:
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
            renderer if mask is None else _masked(renderer, mask),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if mask is not None:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_MaskingFormatter("%(levelname)s %(name)s: %(message)s", mask))


class _CurrentStderr:
    """Prints each line to `sys.stderr` as it is when the line is written, not when the logger was made.

    A logger bound early (an agent's, at construction) outlives a swapped stderr (a CLI runner, a test's capture);
    holding on to the stream it saw then would write to a closed file later.
    """

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = log = msg


def _stderr_logger(*_args: Any) -> _CurrentStderr:
    return _CurrentStderr()


def _masked(renderer: structlog.typing.Processor, mask: Mask) -> structlog.typing.Processor:
    def render(logger: Any, method: str, event: Any) -> Any:
        rendered = renderer(logger, method, event)
        return mask(rendered) if isinstance(rendered, str) else rendered

    return render


class _MaskingFormatter(logging.Formatter):
    """A formatter whose whole output (message, traceback, chained causes) goes through the secret masker."""

    def __init__(self, fmt: str, mask: Mask) -> None:
        super().__init__(fmt)
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, masked."""
        return self._mask(super().format(record))
