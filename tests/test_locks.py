"""The hashed locks: complete, hashed, in step with what they were compiled from, and free of
releases with known vulnerabilities. (`make lock` rewrites them; this says when to run it.)"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CLI_LOCK = ROOT / "requirements" / "cli.txt"
IMAGE_LOCK = ROOT / "service" / "requirements.txt"
# The interpreter both locks are installed with: CI's and the image's Python 3.11 on Linux.
TARGET = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.2",
          "sys_platform": "linux", "platform_system": "Linux"}


def locked(path: Path) -> dict[str, tuple[Version, int, bool]]:
    """name -> (version, number of hashes, whether it installs on TARGET)."""
    entries: dict[str, tuple[Version, int, bool]] = {}
    requirement, hashes = None, 0

    def close() -> None:
        if requirement is not None:
            applies = requirement.marker is None or requirement.marker.evaluate(TARGET)
            if applies or requirement.name not in entries:
                entries[requirement.name] = (
                    Version(next(iter(requirement.specifier)).version), hashes, applies)

    for raw in path.read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash=sha256:"):
            hashes += 1
            continue
        close()
        requirement, hashes = Requirement(line), 0
    close()
    return {name.lower().replace("_", "-"): value for name, value in entries.items()}


def declared(path: Path) -> list[Requirement]:
    if path.suffix == ".toml":
        project = tomllib.loads(path.read_text())["project"]
        lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    else:
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("lock", [CLI_LOCK, IMAGE_LOCK], ids=["cli", "image"])
def test_every_locked_package_is_pinned_with_hashes(lock):
    entries = locked(lock)
    assert len(entries) > 40
    unhashed = [name for name, (_, hashes, _) in entries.items() if hashes == 0]
    assert not unhashed, unhashed


@pytest.mark.parametrize("source, lock", [
    (ROOT / "pyproject.toml", CLI_LOCK), (ROOT / "requirements" / "build.in", CLI_LOCK),
    (ROOT / "service" / "requirements.in", IMAGE_LOCK)], ids=["pyproject", "build", "image"])
def test_every_declared_requirement_is_locked_at_a_version_it_accepts(source, lock):
    entries = locked(lock)
    for requirement in declared(source):
        name = requirement.name.lower()
        assert name in entries, f"{name} is declared in {source.name} but not locked: make lock"
        version, _, applies = entries[name]
        assert applies, f"{name} is locked out of the environment"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name} {version} in {lock.name} is outside {requirement.specifier}: make lock")


@pytest.mark.parametrize("lock", [CLI_LOCK, IMAGE_LOCK], ids=["cli", "image"])
def test_no_release_with_a_known_vulnerability_is_locked(lock):
    entries = locked(lock)
    # skops < 0.12 trusted-type bypasses, < 0.13 Card.get_model; PyJWT 2.10.0 `iss`, < 2.12 `crit`.
    assert entries["skops"][0] >= Version("0.13.0")
    assert entries["pyjwt"][0] >= Version("2.12.0")


def test_the_image_installs_the_versions_the_suite_tests():
    cli, image = locked(CLI_LOCK), locked(IMAGE_LOCK)
    differ = {name: (str(cli[name][0]), str(version)) for name, (version, _, applies)
              in image.items() if applies and name in cli and cli[name][0] != version}
    assert not differ, differ


def test_the_image_leaves_out_what_the_service_never_imports():
    image = locked(IMAGE_LOCK)
    for name in ("polyfactory", "faker", "rich", "rich-click", "pygments"):
        assert name not in image or not image[name][2], name


def test_the_installer_is_the_uv_the_cli_lock_holds():
    bootstrap = locked(ROOT / "requirements" / "bootstrap.txt")
    assert set(bootstrap) == {"uv"} and bootstrap["uv"][1] > 0
    assert bootstrap["uv"][0] == locked(CLI_LOCK)["uv"][0], "make lock"
