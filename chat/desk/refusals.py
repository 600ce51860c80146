"""How the desk says no: each refusal carries its HTTP meaning, which every door maps to its own way of saying it."""

from __future__ import annotations


class Rejected(ValueError):
    """The desk refused a request; ``status`` is its HTTP meaning (413 too long, 422 invalid, 429 too many of
    yours waiting, 503 busy)."""

    status = 422

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(Rejected):
    """What the asker may not see is, to them, not there (a turn that is not theirs to rate)."""

    status = 404


class TooLong(Rejected):
    status = 413


class Busy(Rejected):
    """More answers are waiting than the desk queues; retry after ``retry_after`` seconds."""

    status = 503


class TooMany(Rejected):
    """One asker has as many questions waiting as one asker may; the others are still served."""

    status = 429


class Unavailable(Rejected):
    """The database is unreachable (restarting, down): the request can be retried once it is back."""

    status = 503
