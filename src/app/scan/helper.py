"""Helper processes for a whole-book health scan: each scores the pages it is sent, against the same database.

`ScanHelper.start` runs `python -m src.app.scan.helper`. Parent and helper talk over the helper's stdin
and stdout in length-prefixed pickle frames: first (database URL, `ScanSpec`, omitted keys), then one page's
(after, upto) id bounds per request, answered by its `PageResult` or by the text of the error that stopped it.
The URL travels in a frame, never on the command line or in the environment. The helper imports no graph and
no LLM client, and exits at the end of its stdin: when its parent closes it or dies, the helper ends
after the page it is scoring.
"""

from __future__ import annotations

import asyncio
import pickle
import signal
import struct
import sys
from typing import IO, Any

from src.app.scan.page import PageResult, ScanSpec, score_page
from src.app.tools.store import PageBounds
from src.app.tools.store.sql import SQLStore

_FRAME = struct.Struct("!Q")
CLOSE_TIMEOUT_S = 10.0


class ScanHelperError(RuntimeError):
    """A helper process could not score a page (the caller scores it itself)."""


class ScanHelper:
    """One running helper process, scoring one page at a time for its parent's scan."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, url: str, spec: ScanSpec, omit: tuple[str, ...]) -> ScanHelper:
        """Start a helper for one scan; it opens the database at `url` (raises OSError if it cannot start)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        helper = cls(process)
        await helper._send((url, spec, omit))
        return helper

    async def score(self, bounds: PageBounds) -> PageResult:
        """Score and save the page of accounts within `bounds`; raises ScanHelperError when the helper fails."""
        await self.submit(bounds)
        return await self.collect()

    async def submit(self, bounds: PageBounds) -> None:
        """Queue a page: the helper scores its pages in the order sent, one after the other."""
        await self._send(bounds)

    async def collect(self) -> PageResult:
        """The result of the oldest page sent and not yet received; ScanHelperError when the helper failed on it."""
        reply = await self._receive()
        if not isinstance(reply, PageResult):
            raise ScanHelperError(f"scan helper failed on a page: {reply}")
        return reply

    async def close(self) -> None:
        """End the helper: close its input, wait for it to exit, kill it if it does not."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    async def _send(self, value: Any) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            raise ScanHelperError("scan helper input is closed")
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            stdin.write(_FRAME.pack(len(data)) + data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ScanHelperError(f"scan helper exited (code {self._process.returncode})") from error

    async def _receive(self) -> Any:
        stdout = self._process.stdout
        if stdout is None:
            raise ScanHelperError("scan helper has no output")
        try:
            header = await stdout.readexactly(_FRAME.size)
            return pickle.loads(await stdout.readexactly(_FRAME.unpack(header)[0]))
        except asyncio.IncompleteReadError as error:
            raise ScanHelperError(f"scan helper exited (code {await self._process.wait()})") from error


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    return pickle.loads(stream.read(_FRAME.unpack(header)[0]))


def _write_frame(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


async def _score_range(store: SQLStore, spec: ScanSpec, omit: tuple[str, ...], bounds: PageBounds) -> PageResult:
    records = await store.accounts_in_range(*bounds, omit=omit)
    return await score_page(store, spec, records)


def main() -> None:
    """The helper's loop: one page per request frame until its input ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent ends us
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by accident may corrupt the reply frames
    setup = _read_frame(requests)
    if setup is None:
        return
    url, spec, omit = setup
    store = SQLStore(url)
    with asyncio.Runner() as runner:
        try:
            while (bounds := _read_frame(requests)) is not None:
                try:
                    reply: PageResult | str = runner.run(_score_range(store, spec, omit, bounds))
                except Exception as error:  # reported to the parent, which scores the page itself
                    reply = f"{type(error).__name__}: {error}"
                try:
                    _write_frame(replies, reply)
                except BrokenPipeError:  # the parent is gone
                    return
        finally:
            runner.run(store.aclose())


if __name__ == "__main__":
    main()
