"""`python -m bot` runs the digestbot command."""

from .cli import main

main()
