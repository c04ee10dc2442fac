"""Built-in domain plugins. Each is one package with one entry point in suite.plugins."""
