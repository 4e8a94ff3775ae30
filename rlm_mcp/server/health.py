"""The ``/ping`` health report in the shape AgentCore Runtime polls.

``{"status": "Healthy" | "HealthyBusy", "time_of_last_update": <unix seconds>}``:
``HealthyBusy`` while a run or a request is in progress tells the runtime the
session is working even when no request is open (a ``wait=false`` run), so it is
not reaped as idle; ``time_of_last_update`` is when the status last changed,
which the runtime's idle tracking relies on.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(self, busy: Callable[[], bool]):
        self._busy = busy
        self._status = "Healthy"
        self._since = int(time.time())

    def report(self) -> dict[str, str | int]:
        status = "HealthyBusy" if self._busy() else "Healthy"
        if status != self._status:
            self._status, self._since = status, int(time.time())
        return {"status": status, "time_of_last_update": self._since}
