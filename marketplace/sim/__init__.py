"""The synthetic market and seeding: ``market`` generates one from a seed integer, ``seed``
loads it into a marketplace through a client, ``manifest`` is the JSON file that records what
was seeded for load tests and notebooks. A driver: it works through the client, imports no Ray.
"""
