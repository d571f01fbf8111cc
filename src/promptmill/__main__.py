"""``python -m promptmill``."""

from promptmill.cli import main

if __name__ == "__main__":
    main()
