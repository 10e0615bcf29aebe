"""How far one paged read may go: as far as the vendor's own numbers can be true, and no longer
than a deadline.

A vendor (or a proxy in front of it) that hands out a fresh cursor with 200 new ids on every page
would keep a read paging until memory runs out; one answering `SubscriberNum: 10**12` did for
17,000 pages and 650 MB (issue 12). The pages a read may take are what its answer's own count
needs, and that count is believed only as far as the account can hold: its `MaxSubscriberNum`
(reference 4.2; the reference documents no maximum for it, only the default of 100,000), as this
client last read it. A vendor lying about that as well is stopped by the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

#: Pages a paged read may take beyond what the answer's own total needs (ceil(total / size)):
#: members may join while we page. A cursor that keeps going past this is a broken server.
PAGE_SLACK: Final = 3
#: Without a total, the most pages a read takes (200,000 accounts of one inventory user).
MAX_PAGES: Final = 1000
#: Seconds one paged read may take from its first page to its last (`limits.readDeadlineSeconds`).
#: The longest honest one at the defaults: 64 accounts of 100,000 subscribers paged together
#: share 200 calls/s, 500 pages each, about 160 s; a tenth of the rate still fits.
READ_DEADLINE: Final = 1800.0


class PageBudget:
    """The pages and the time one paged read may take; `more()` before asking for each next page.

    `capacity` is the most items the listed object can hold (an account's `MaxSubscriberNum`, or
    its `SubscriberNum` when that is larger, as last read), None when unknown: a total above it
    is believed only up to it.
    """

    def __init__(
        self,
        noun: str,
        *,
        page_size: int,
        deadline: float = READ_DEADLINE,
        capacity: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.noun = noun
        self.page_size = page_size
        self.deadline = deadline
        self.capacity = capacity
        self.pages = 0
        #: the largest total an answer gave
        self.most = 0
        self._clock = clock
        self._started = clock()

    def more(self, total: int | None) -> str | None:
        """Count a page that is not the last, whose answer gives `total` items (None: it gives
        none); why the read must stop here, or None while it is within budget."""
        self.pages += 1
        if self._clock() - self._started >= self.deadline:
            return (
                f"paging did not end within {self.deadline:g}s (limits.readDeadlineSeconds),"
                f" after {self.pages} pages"
            )
        if total is None:
            if self.pages >= MAX_PAGES:
                return f"paging did not end after {self.pages} pages"
            return None
        self.most = max(self.most, total)
        believed = self.most if self.capacity is None else min(self.most, self.capacity)
        if self.pages < -(-believed // self.page_size) + PAGE_SLACK:
            return None
        if believed < self.most:
            return (
                f"paging did not end after {self.pages} pages: the answers count {self.most}"
                f" {self.noun}, but the account holds at most {self.capacity}"
            )
        return f"paging did not end after {self.pages} pages for {self.most} {self.noun}"
