"""Installed versions of Python, the platform and named packages, for provenance records and bug reports."""

import platform
from collections.abc import Iterable
from importlib import metadata


NOT_INSTALLED = "not installed"


def package_versions(names: Iterable[str], missing: str | None = NOT_INSTALLED) -> dict[str, str | None]:
    """Installed version of each distribution in ``names``, in that order.

    Parameters
    ----------
    names : iterable of str
        Distribution names as pip knows them (``"scikit-learn"``, ``"open_clip_torch"``).
    missing : str or None
        Value recorded for a distribution that is not installed.

    Returns
    -------
    dict
        Name to version string, or ``missing``.
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions


def runtime_versions() -> dict[str, str]:
    """``{"python": "3.11.9", "platform": "Linux-...-x86_64-with-glibc2.35"}`` of the running interpreter."""
    return {"python": platform.python_version(), "platform": platform.platform()}
