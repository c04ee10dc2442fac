"""Shared services every plugin uses: preprocessing, embeddings, search, training,
the model registry, scheduling and alert delivery. Services never import plugins."""
