"""``python -m grokcast``: the ``grokcast`` command, for an environment whose scripts
directory is not on PATH (a venv not activated, a notebook's ``!python -m grokcast ...``)."""

import sys

from grokcast.cli import main

# The guard keeps a sweep's spawned workers, which import this module again, from running
# the command a second time.
if __name__ == "__main__":
    sys.exit(main())
