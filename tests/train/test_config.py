import pytest
from hydra.errors import ConfigCompositionException

from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.model.dbnet import ModelConfig
from ocrdet.train.config import TrainConfig, compose


def test_defaults_come_from_the_settings_dataclasses():
    config = compose([])
    assert isinstance(config, TrainConfig)
    assert config.model == ModelConfig()
    assert config.data.root == "data/synth" and config.synth.train > 0


def test_command_line_overrides_reach_typed_settings():
    config = compose(["experiment=demo", "trainer.max_epochs=3", "model.backbone=resnet34", "data.augment.scale=[1,2]"])
    assert config.trainer.max_epochs == 3
    assert config.model.backbone == "resnet34"
    assert isinstance(config.data.augment, AugmentConfig) and config.data.augment.scale == (1, 2)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigCompositionException):
        compose(["model.backbon=resnet34"])


def test_data_groups_switch_the_root():
    assert compose(["data=sroie"]).data.root.endswith("sroie")
