"""Command-line interface: ``autofab run | schedule | monitor | serve | ...``."""

from autofab.cli.app import app, main

__all__ = ["app", "main"]
