"""chatbot plugin."""
