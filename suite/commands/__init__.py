"""Command groups of the shared services, mounted by suite.cli."""
