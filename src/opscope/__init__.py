"""opscope: find out why a data platform is slow, and keep watch over it."""

__version__ = "0.1.0"
