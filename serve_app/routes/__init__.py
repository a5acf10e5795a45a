"""The v1 routes, one module per resource; ``serve_app.gateway.build_api`` assembles them.

Each route is a thin adapter: it authenticates and validates (``serve_app.deps``, the schemas),
calls ``MarketplaceClient`` and maps the result onto the contract of DESIGN.md section 6; a
domain error becomes a problem by ``serve_app.problems``.
"""
