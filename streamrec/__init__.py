"""streamrec: real-time streaming recommendations (console script, local stack, shared contracts)."""

__version__ = "0.1.0"
