"""Marketplace: an actor-model distributed marketplace runtime.

`marketplace` holds the framework-free core (domain, store, events, simulation, settings, CLI);
`actors` adapts it to Ray; `serve_app` exposes it over HTTP.
"""

__version__ = "0.1.0"
