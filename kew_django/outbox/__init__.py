"""The outbox: send typed data to a queue in the caller's database transaction.

``Channel.send`` writes an outbox row; the relay (``kew_django.relay``)
publishes it after the transaction commits.
"""

from kew_django.outbox.channel import Channel

__all__ = ["Channel"]
