"""The scheduler: APScheduler with a persistent job store; it only emits events."""
