"""Runnable processes and their configuration: the embedded nats-server, the stack, the CLI."""
