"""Run the gobuild server: `python app.py [--config FILE] [--listen HOST:PORT]`."""

import sys

from gobuild.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
