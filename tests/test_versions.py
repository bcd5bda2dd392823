import platform
from importlib import metadata

from ttdnet.versions import NOT_INSTALLED, package_versions, runtime_versions


def test_package_versions_keep_the_order_and_mark_missing_packages():
    missing = "ttdnet-no-such-distribution"
    assert package_versions(["numpy", missing, "pyyaml"]) == {
        "numpy": metadata.version("numpy"),
        missing: NOT_INSTALLED,
        "pyyaml": metadata.version("pyyaml"),
    }
    assert package_versions([missing], missing=None) == {missing: None}


def test_runtime_versions_name_python_and_the_platform():
    assert runtime_versions() == {"python": platform.python_version(), "platform": platform.platform()}
