from dataclasses import dataclass, field

import pytest

from tfkit.config import ConfigError, apply_overrides, field_names


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    widths: tuple[int, ...] = (64, 128)


@dataclass(frozen=True)
class Cfg:
    seed: int = 0
    name: str = "x"
    flag: bool = False
    data_dir: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_overrides_parse_types():
    cfg = apply_overrides(Cfg(), ["seed=3", "flag=true", "inner.lr=0.5", "inner.widths=8,16",
                                  "data_dir=/tmp"])
    assert cfg.seed == 3 and cfg.flag is True and cfg.inner.lr == 0.5
    assert cfg.inner.widths == (8, 16) and cfg.data_dir == "/tmp"
    assert apply_overrides(cfg, ["data_dir=none"]).data_dir is None


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="inner.lr"):
        apply_overrides(Cfg(), ["nope=1"])


def test_wrong_type_is_clear():
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(Cfg(), ["seed=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Cfg(), ["seed"])


def test_field_names_nested():
    assert field_names(Cfg()) == ["seed", "name", "flag", "data_dir", "inner.lr",
                                  "inner.widths"]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999"])
def test_a_non_finite_number_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=f"inner.lr: expected a finite number, got '{value}'"):
        apply_overrides(Cfg(), [f"inner.lr={value}"])  # was accepted: hours of NaN training
    assert apply_overrides(Cfg(), ["inner.lr=1e-3"]).inner.lr == 1e-3


def test_a_nested_key_is_named_in_full():
    with pytest.raises(ConfigError, match="'inner.nope' for Inner; valid keys: inner.lr, inner"):
        apply_overrides(Cfg(), ["inner.nope=1"])  # was 'nope' ... valid keys: lr, widths
    with pytest.raises(ConfigError, match="inner.widths: expected an integer, got 'a'"):
        apply_overrides(Cfg(), ["inner.widths=8,a"])
