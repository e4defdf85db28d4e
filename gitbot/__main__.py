"""`python -m gitbot` runs the command-line interface."""

from gitbot.cli import main

if __name__ == "__main__":
    main()
