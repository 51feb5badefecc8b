"""`python -m dataloader`: the same as the `dataloader` command."""

from dataloader.cli import main

if __name__ == "__main__":
    main()
