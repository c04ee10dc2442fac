"""suite: a plugin-based NLP application suite.

The core (this package) defines the hook specifications, discovers plugins, validates
configuration and exposes the CLI and HTTP app. It knows nothing of any particular plugin.
"""

from suite.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
