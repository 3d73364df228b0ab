"""The event bus: envelope on the wire, topology, brokers (RabbitMQ and in-memory), ledger, worker."""
