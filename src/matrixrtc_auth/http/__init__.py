"""The HTTP face of the service: request parsing, handlers and middleware."""
