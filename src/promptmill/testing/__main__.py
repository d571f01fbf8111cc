"""``python -m promptmill.testing``: serve the test API from the shell."""

from promptmill.testing.runners import main

if __name__ == "__main__":
    main()
