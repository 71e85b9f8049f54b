"""`python -m bastion.cli` runs the `bastion` command."""

from bastion.cli.main import main

main()
