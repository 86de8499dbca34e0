"""Helpers of bench/peers.py: one Django app and the three systems' senders and consumers."""
