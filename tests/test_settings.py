"""Each model's settings are declared once, as a dataclass (``train_scripts/training/settings.py``): the flags, the
presets and the constructor arguments derive from it, and runs keep the configs they were trained with."""

import dataclasses
import json
import os

import pytest

from train_scripts.training.config import COMMON_DEFAULTS, CommonSettings, build_parser, resolve_config
from train_scripts.training.models.ddim import DDIMSettings
from train_scripts.training.registry import SPECS
from train_scripts.training.settings import arguments_for, defaults, from_config, setting

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "settings", "model_configs.json")


@pytest.fixture(scope="module")
def recorded():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_presets_and_flags_are_those_the_runs_were_trained_with(name, recorded):
    """A run's config.json is its preset with the flags it overrode, and resuming compares configs: every preset
    (keys, values and their types) and every flag (type, help, choices) is the one recorded before the settings
    became dataclasses (tests/fixtures/settings/README.md)."""
    spec = SPECS[name]

    def typed(config):  # the common settings added since are in a preset now, and fill an older run's config
        return {key: [value, type(value).__name__] for key, value in {**COMMON_DEFAULTS, **config}.items()}

    presets = {preset: typed(config) for preset, config in spec.presets.items()}
    assert presets == {preset: typed({key: value for key, (value, _) in config.items()})
                       for preset, config in recorded[name]["presets"].items()}
    flags = {key: [kind.__name__, helptext, list(choices[0]) if choices else None]
             for key, (kind, helptext, *choices) in spec.arguments.items()}
    assert flags == recorded[name]["flags"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_preset_is_the_settings_defaults_with_named_overrides(name):
    spec = SPECS[name]
    for preset, config in spec.presets.items():
        assert set(defaults(spec.settings)) <= set(config), preset
        settings = from_config(spec.settings, config)
        for field in dataclasses.fields(spec.settings):
            assert getattr(settings, field.name) == config.get(field.name, field.default), (preset, field.name)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_settings_field_is_a_flag_that_overrides_the_preset(name):
    spec = SPECS[name]
    parser = build_parser(spec)
    preset = "latent" if name == "ddim" else "quick"  # the DDIM's latent key is in its latent preset only
    for field in dataclasses.fields(spec.settings):
        flag, before = "--" + field.name.replace("_", "-"), spec.presets[preset].get(field.name)
        kind, choices = field.metadata["parse"] or field.type, field.metadata["choices"]
        if kind is bool:
            argv, expected = [flag if not before else "--no-" + flag[2:]], not before
        elif choices:
            expected = next(choice for choice in choices if choice != before)
            argv = [flag, expected]
        else:
            text = {int: "7", float: "0.25", str: "some/run"}.get(kind, "8,16")
            argv, expected = [flag, text], kind(text)
        args = parser.parse_args(["--preset", preset, *argv])
        config, _ = resolve_config(dataclasses.replace(spec, check=None), args)  # no autoencoder run to look for
        assert config[field.name] == expected and type(config[field.name]) is type(expected), field.name


# a valid value, other than the quick presets', for each setting every script has (``config.CommonSettings``)
COMMON_VALUES = {"data": "some/run", "image_size": 32, "jitter": "none", "expand": 3, "batch_size": 7, "steps": 14,
                 "seed": 7, "log_every": 1, "checkpoint_every": 7, "keep_every": 7, "sample_every": 7,
                 "val_split": "train", "val_images": 7, "eval_split": "val", "jit_compile": True,
                 "steps_per_execution": 7, "mixed_precision": "mixed_bfloat16", "budget_minutes": 0.25}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_common_setting_is_a_flag_of_every_script(name):
    """Declared once in ``CommonSettings``: a flag of every train script (XLA's spelled ``--jit``), typed as the
    field, overriding the preset; every preset starts from their defaults."""
    assert set(COMMON_VALUES) == {field.name for field in dataclasses.fields(CommonSettings)}
    spec = SPECS[name]
    argv = []
    for key, value in COMMON_VALUES.items():
        assert value != spec.presets["quick"][key], key
        argv += ["--jit"] if key == "jit_compile" else ["--" + key.replace("_", "-"), str(value)]
    config, overrides = resolve_config(dataclasses.replace(spec, check=None), build_parser(spec).parse_args(argv))
    assert set(overrides) == set(COMMON_VALUES)
    for key, value in COMMON_VALUES.items():
        assert config[key] == value and type(config[key]) is type(value), key
    for preset in spec.presets.values():
        assert set(defaults(CommonSettings)) <= set(preset)


def test_a_config_saved_before_newer_settings_existed_gets_their_defaults():
    """Older DDIM runs have no loss_weighting, min_snr_gamma, condition_every_level or latent keys; they trained
    with what these settings now default to."""
    newer = ("loss_weighting", "min_snr_gamma", "condition_every_level", "latent")
    old = {key: value for key, value in SPECS["ddim"].presets["paper"].items() if key not in newer}
    settings = from_config(DDIMSettings, old)
    assert (settings.loss_weighting, settings.min_snr_gamma, settings.condition_every_level, settings.latent) == \
        ("none", 5.0, False, None)
    assert settings.widths == old["widths"] and settings.lr == old["lr"]


def test_constructor_arguments_are_the_settings_that_name_its_parameters():
    @dataclasses.dataclass
    class Settings:
        width: int = setting(8, "width")
        lr: float = setting(0.1, "learning rate, not the constructor's")
        scale: float = setting(None, "left out of presets while None")

    class Network:
        def __init__(self, width, depth=2, scale=1.0):
            pass

    def make(width, depth=2):
        pass

    assert arguments_for(Settings(width=4), Network) == {"width": 4, "scale": None}
    assert arguments_for(Settings(), make, depth=3) == {"width": 8, "depth": 3}
    assert arguments_for(Settings(), make, width=16) == {"width": 16}
    assert defaults(Settings) == {"width": 8, "lr": 0.1}
