"""Settings of the end-to-end tests' processes: the project's, with a short database lease.

The database provider hides a delivered message from other consumers for
its lease (300 s by default) and delivers it again when the lease runs out
unacknowledged. The tests SIGKILL a consumer in the middle of an import,
so they shorten the lease to see that message come back in seconds.
"""

from project.settings import *  # noqa: F403

if KEW["PROVIDERS"]["default"].get("URL") == "database://":  # noqa: F405
    KEW["PROVIDERS"]["default"]["OPTIONS"] = {"lease": 3.0}  # noqa: F405
