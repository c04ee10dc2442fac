"""recommender plugin."""
