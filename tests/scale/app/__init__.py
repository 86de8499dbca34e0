"""The scale-out tests' own app: consumers that record each effect, and a sender command."""
