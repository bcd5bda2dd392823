"""``--device``: a device this machine lacks is one clear error when the options are parsed."""

import dataclasses

import pytest
import torch

from ttdnet.config import ConfigError, ConfigParser
from ttdnet.devices import default_device, resolve_device


@dataclasses.dataclass
class WithDevice:
    device: str | None = dataclasses.field(default=None, metadata={"help": "cpu, cuda or cuda:N"})


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_names_the_machine_has_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("") == default_device()
    assert default_device().type == ("cuda" if cuda_count() else "cpu")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cuda:7", f"--device cuda:7: this machine has {cuda_count()} CUDA device(s); choose one of cpu"),
        ("gpu", "--device 'gpu' is not a device name; use cpu, cuda or cuda:N"),
        ("meta", "--device meta: ttdnet runs on cpu, cuda, cuda:N or mps"),
    ],
)
def test_a_device_the_machine_lacks_is_refused_at_parse_time(name, expected):
    if name == "cuda:7" and cuda_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ConfigError) as error:
        ConfigParser(WithDevice).parse_config(["--device", name])
    assert str(error.value).startswith(expected)


def test_a_device_from_yaml_is_checked_too(tmp_path):
    (tmp_path / "c.yaml").write_text("device: cuda:7\n")
    if cuda_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ConfigError, match="this machine has"):
        ConfigParser(WithDevice).parse_config(["--config", str(tmp_path / "c.yaml")])
    assert ConfigParser(WithDevice).parse_config(["--device", "cpu"])[0].device == "cpu"
