"""The process entry point (`gitbot` and `python -m gitbot`): start-up without the cyclic collector, then
the command-line interface.

Loading the commands allocates a few hundred thousand objects (modules, classes, validation schemas) and
frees almost none, so the collector's passes over them are wasted: about a tenth of a one-shot cycle. The
collector stays off while the command loads; `gitbot.cli` then freezes what was loaded out of every later
pass and turns it back on for the command's own work.
"""

import gc


def main() -> None:
    gc.disable()
    from gitbot.cli import main as run

    run()


if __name__ == "__main__":
    main()
