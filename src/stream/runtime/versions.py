"""The versions of faust-streaming and aiokafka that stream's transport was written for.

``stream/runtime/transport.py``, ``positions.py`` and ``app.py`` work around faust-streaming's offset and
rebalance faults (its issues #177, #517 and the ones named there) through its internals:
``Consumer._new_offset``, ``_read_offset``, ``_commit_offsets``, the aiokafka driver's
consumer thread, ``TransactionManager.transactional_id_format``.  Another version may change
any of them without a sign, so a worker refuses to start with one it was not tested with.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable

from ..errors import DependencyError

__all__ = ["SUPPORTED", "check_versions"]

#: Distribution -> the exact version stream was tested with (also pinned in pyproject.toml).
SUPPORTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def check_versions(installed: Callable[[str], str] = metadata.version) -> None:
    """:raises DependencyError: a supported distribution is missing or at another version,
    naming both versions and the command that installs the right one."""
    for dist, wanted in SUPPORTED.items():
        try:
            have = installed(dist)
        except metadata.PackageNotFoundError:
            raise DependencyError(f"{dist} is not installed; stream needs {dist} {wanted}: "
                                  f"pip install '{dist}=={wanted}'") from None
        if have != wanted:
            raise DependencyError(
                f"{dist} {have} is installed, but stream was written and tested for {dist} {wanted} (its "
                f"offset handling relies on {dist}'s internals); install it with: pip install '{dist}=={wanted}'")
