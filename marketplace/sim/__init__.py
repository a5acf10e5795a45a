"""The synthetic market, seeding and the simulator's workload. A driver: it works through the
client, imports no Ray.

``market`` generates a market from a seed integer, ``seed`` loads it into a marketplace through a
client, ``manifest`` is the JSON file that records what was seeded for load tests and notebooks.
The simulator: ``operations`` (the intended operations), ``presets`` (named activity mixes),
``behaviours`` (seeded sessions, seller and carrier actions, flash sales), ``workload`` (a preset
over a market as a stream of operations), ``arrivals`` (open-loop schedules) and ``loops`` (open
and closed runners against a target). See README.md.
"""
