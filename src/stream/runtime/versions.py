"""The versions of faust-streaming and aiokafka that stream was tested with.

stream uses both through their public APIs only (aiokafka's consumer, producer,
transactions and admin client; faust's App, BootStrategy, Service and Worker), but the
data path's guarantees rest on their behaviour (rebalance callbacks, commit and
transaction semantics), so a worker refuses to start with a version it was not tested with.
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
                f"{dist} {have} is installed, but stream was written and tested for {dist} {wanted}; "
                f"install it with: pip install '{dist}=={wanted}'")
