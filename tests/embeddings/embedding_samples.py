"""Texts shared by the embedding tests."""

# Varied lengths: empty, one word, punctuation, non-ASCII, and one past the 256-token limit.
SENTENCES = [
    "",
    "Hello",
    "My card was declined at the supermarket today.",
    "How do I top up my account with a bank transfer from abroad?",
    "Why is the exchange rate you applied to my payment in euros so much worse than the one on Google?",
    "Refund!!!",
    "Café crème, naïve façade, über-cool résumé.",
    "I ordered a new physical card three weeks ago and it still has not arrived; "
    "can you tell me where it is, whether it was lost in the post, and if I should cancel it?",
    "pending",
    "The transfer to my friend shows as pending since yesterday morning.",
    "短い文です。",
    " ".join(["token"] * 400),
]
