"""Thin Ray actors around the domain, the directory that routes to them, and the client."""
