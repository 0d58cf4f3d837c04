"""``python -m syncd``: the same command as ``syncd``."""

from syncd.cli import main

if __name__ == "__main__":
    main()
