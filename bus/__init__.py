"""The event bus: topology, brokers (RabbitMQ and in-memory), retry policy, idempotency ledger, worker."""
