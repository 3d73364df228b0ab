"""Marshmallow schemas: the CloudEvents envelope, one schema per event type, the config file's, and their vocabulary."""
