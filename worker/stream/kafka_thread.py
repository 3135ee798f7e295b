"""The one thread that calls the confluent-kafka consumer.

`poll` never waits on HTTP and consumer calls never race each other: every call goes through
`call`, from the event loop, and runs on this thread. Rebalance callbacks run inside `consume`
and `close` on this thread too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class KafkaThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kafka")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run `fn(*args, **kwargs)` on the kafka thread; await the result on the loop."""
        return asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args, **kwargs)
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
