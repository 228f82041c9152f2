"""authority: short-lived, per-call credentials for autonomous agents."""

__version__ = "0.1.0"
