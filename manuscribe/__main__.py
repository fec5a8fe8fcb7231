"""`python -m manuscribe` is the `manuscribe` command."""

from manuscribe.cli import app

app()
