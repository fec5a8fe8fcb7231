"""manuscribe: bulk digitisation of handwritten archives."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("manuscribe")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
