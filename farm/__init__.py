"""farm: convert trained models into verified, benchmarked variants per hardware class."""

__version__ = "0.1.0"
