"""grokcast: forecast grokking from the first few hundred steps of training."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("grokcast")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
