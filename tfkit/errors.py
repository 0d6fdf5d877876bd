"""tfkit's user-facing errors. The CLI prints these as one line (`tfkit: error: ...`)."""

__all__ = ["TfkitError"]


class TfkitError(Exception):
    """Bad input or a missing resource that the user can fix; the message says how."""
