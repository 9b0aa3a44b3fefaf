"""opscope: find out why a data platform is slow, and keep watch over it."""

__version__ = "0.1.0"

import logging

# A library does not configure logging; without a handler of ours, Python's last-resort
# handler would print warnings (with tracebacks) to the user's terminal.
logging.getLogger(__name__).addHandler(logging.NullHandler())
