"""The worker refuses a faust-streaming or aiokafka it was not tested with."""

from __future__ import annotations

from importlib import metadata

import pytest

from stream.errors import DependencyError
from stream.runtime.versions import SUPPORTED, check_versions


def test_the_installed_versions_are_the_supported_ones() -> None:
    check_versions()  # what make install installed, from pyproject.toml and constraints.txt


def test_another_version_is_refused_naming_both_and_the_fix() -> None:
    versions = {**SUPPORTED, "faust-streaming": "0.16.0"}
    with pytest.raises(DependencyError) as caught:
        check_versions(versions.__getitem__)
    message = str(caught.value)
    assert "faust-streaming 0.16.0 is installed" in message and "tested for faust-streaming 0.15.3" in message
    assert "pip install 'faust-streaming==0.15.3'" in message


def test_a_missing_library_is_refused() -> None:
    def installed(dist: str) -> str:
        if dist == "aiokafka":
            raise metadata.PackageNotFoundError(dist)
        return SUPPORTED[dist]

    with pytest.raises(DependencyError, match="aiokafka is not installed"):
        check_versions(installed)
