"""Find the rows of a batch that a provider refuses before sending anything.

A provider's ``send_prepared`` checks the whole batch first and raises
``ConfigurationError`` for the first message it can never take (the
relay validates rows beforehand, so this is a provider rule that
``Provider.prepare`` does not know). Sending the rows one by one then
refuses exactly those rows and sends the rest, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kew.errors import ConfigurationError, SendError
from kew.providers.base import Prepared
from kew.qchan.producers import LazyProducer


def send_one_by_one(
    producers: LazyProducer, batch: Sequence[tuple[Any, Prepared]]
) -> tuple[list[Any], list[tuple[Any, Exception]]]:
    """Send each row alone; return (sent rows, [(refused row, error)]).

    Stops at the first broker rejection (``SendError``): the rows after it
    are neither sent nor refused, so they stay pending and keep their order.
    ``ConnectionLost`` propagates (nothing is marked: the batch is retried).
    """
    sent: list[Any] = []
    refused: list[tuple[Any, Exception]] = []
    for row, prepared in batch:
        try:
            producers.get().send_prepared([prepared])
        except ConfigurationError as error:
            refused.append((row, error))
            continue
        except SendError as error:
            producers.drop()
            refused.append((row, error))
            break
        except BaseException:
            producers.drop()
            raise
        sent.append(row)
    return sent, refused
