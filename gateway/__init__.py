"""The HTTP front door: CloudEvents, Aodh hooks, chat-ops, status, health."""
