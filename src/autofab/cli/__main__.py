"""``python -m autofab.cli``."""

from autofab.cli.app import main

main()
