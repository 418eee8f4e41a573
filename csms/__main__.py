"""Lets `python -m csms` run the command line."""

from csms.cli import main

main()
