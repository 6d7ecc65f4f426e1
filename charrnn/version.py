"""The package's version (pyproject.toml's [project] version, kept equal by a test)."""
__version__ = "0.1.0"
