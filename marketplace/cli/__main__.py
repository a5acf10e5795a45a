"""``python -m marketplace.cli``: the ``marketplace`` command without its script."""

from marketplace.cli import app

app()
