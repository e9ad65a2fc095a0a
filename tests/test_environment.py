"""The environment is the tested one: the direct dependencies installed are those of
requirements.lock, and the lock agrees with pyproject.toml's ranges.

Drift shows here, in CI, rather than on a user's machine. To move a dependency on purpose: change
its range in pyproject.toml, refresh the lock (README, Development), reinstall, and run the suite.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REFRESH = "see README.md, Development, for the command that refreshes the lock"


def direct_requirements(with_extras: bool = True) -> list[Requirement]:
    """pyproject.toml's dependencies, and those of every extra unless ``with_extras`` is False."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [
        Requirement(req) for req in [*project["dependencies"], *(extras if with_extras else [])]
    ]


def test_every_direct_dependency_is_locked_within_its_range(locked_versions):
    pins = locked_versions
    unlocked = [
        str(req) for req in direct_requirements() if canonicalize_name(req.name) not in pins
    ]
    assert not unlocked, f"not in requirements.lock: {unlocked}; {REFRESH}"
    outside = {
        str(req): pins[canonicalize_name(req.name)]
        for req in direct_requirements()
        if not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)
    }
    assert not outside, f"locked outside pyproject.toml's range: {outside}; {REFRESH}"


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@pytest.mark.lock
def test_the_installed_direct_dependencies_are_the_locked_ones(locked_versions):
    pins = locked_versions
    names = sorted({canonicalize_name(req.name) for req in direct_requirements()})
    drift = {
        name: f"installed {installed(name)}, locked {pins[name]}"
        for name in names
        if installed(name) is not None and installed(name) != pins[name]
    }
    assert not drift, (
        f"the environment differs from requirements.lock: {drift}. Install the tested set with "
        '`pip install -c requirements.lock -e ".[test]"`, or move the lock on purpose ('
        f"{REFRESH}) and run the suite."
    )
    core = {canonicalize_name(req.name) for req in direct_requirements(with_extras=False)}
    missing = sorted(name for name in core if installed(name) is None)
    assert not missing, f"not installed: {missing}; `pip install -c requirements.lock -e .`"


#: torchaudio's compiled part is built against one torch release: torch minor -> torchaudio minor.
TORCHAUDIO_FOR_TORCH = {"2.14": "2.11"}


def test_torch_and_torchaudio_are_locked_as_a_pair_built_for_each_other(locked_versions):
    pins = locked_versions
    torch_minor, torchaudio_minor = (
        pins[name].rsplit(".", 1)[0] for name in ("torch", "torchaudio")
    )
    assert TORCHAUDIO_FOR_TORCH.get(torch_minor) == torchaudio_minor, (
        f"torch {pins['torch']} with torchaudio {pins['torchaudio']} is not a known pair; add the "
        "pair here only once the suite has passed with it"
    )
