"""RabbitMQ behind the Broker protocol: the broker, its I/O thread, publishing, consuming, AMQP mapping."""
from bus.rabbitmq.amqp import BrokerUnavailable, MissingQueue, amqp_properties, queue_arguments, safe_url
from bus.rabbitmq.broker import RabbitBroker

__all__ = ["BrokerUnavailable", "MissingQueue", "RabbitBroker", "amqp_properties", "queue_arguments", "safe_url"]
