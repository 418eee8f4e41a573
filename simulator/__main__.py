"""Lets `python -m simulator` run the command line."""

from simulator.cli import main

main()
