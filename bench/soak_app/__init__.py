"""The consumer the soak script (bench/soak.py) runs in its kew_consume processes."""
