"""Marshmallow schemas: the CloudEvents envelope, one schema per event type, and the config file's."""
