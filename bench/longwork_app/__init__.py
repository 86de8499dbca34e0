"""The old mode of the import consumer, for bench/longwork.py: the import in one transaction."""
