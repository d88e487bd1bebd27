"""``python -m latentspace.cli``."""

from latentspace.cli import main

main()
