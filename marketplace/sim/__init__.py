"""The market simulator. A driver: it works through the typed client or over HTTP, and imports
no Ray itself.

``market`` generates a market from a seed integer, ``seed`` loads it into a marketplace through a
client (``http_seed`` through the gateway), ``manifest`` is the JSON file that records what was
seeded for load tests and notebooks. The simulator: ``operations`` (the intended operations),
``presets`` (named activity mixes), ``behaviours`` (seeded sessions, seller and carrier actions,
flash sales), ``workload`` (a preset over a market as a stream of operations), ``arrivals``
(open-loop schedules), ``loops`` (open and closed runners against a target), ``simulation``
(``SimConfig`` and ``simulate``), the targets ``client_target`` and ``http_target`` (with what
they share in ``shopping`` and ``deliveries``), and ``results`` (the results folder). See
README.md.
"""
