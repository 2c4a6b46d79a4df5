"""The sidecar's L2 books: kept by each venue's procedure, and landed as history."""

from streaming.book.recorder import BookRecorder

__all__ = ["BookRecorder"]
