"""The generator service: generation and validation, wire format, Serve app, client."""
