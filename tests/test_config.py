"""Configuration: every field documented, TOML round trip, overrides, validation naming the field."""

import dataclasses
from pathlib import Path

import pytest

from dcrcoadd.config import Config, apply_override, from_dict, to_markdown, to_toml
from dcrcoadd.config.schema import field_docs
from dcrcoadd.config.validation import SOLVER_NAMES
from dcrcoadd.dcr.solvers import SOLVERS
from dcrcoadd.errors import ConfigError


def all_fields(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from all_fields(value, f"{prefix}{f.name}.")
        else:
            yield type(obj).__name__, f.name


def test_every_field_is_documented():
    docs = field_docs()
    missing = [f"{cls}.{name}" for cls, name in all_fields(Config()) if not docs.get(cls, {}).get(name)]
    assert not missing


def test_reference_doc_is_current():
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert text == to_markdown(), "regenerate: dcrcoadd config markdown > docs/configuration.md"


@pytest.mark.parametrize("comments", [False, True])
def test_toml_round_trip(comments):
    import tomllib

    config = Config()
    apply_override(config, "dcr.iterative.max_num_iter=12")
    apply_override(config, "coadd.subregion_size=[500, 400]")
    apply_override(config, "artifacts.detect.threshold_value=6")
    back = from_dict(tomllib.loads(to_toml(config, comments=comments)))
    assert back == config
    assert back.coadd.subregion_size == (500, 400) and back.artifacts.detect.threshold_value == 6.0


@pytest.mark.parametrize(("override", "field"), [
    ("dcr.dcr_num_subfilters=1", "dcr.dcr_num_subfilters"),
    ("dcr.iterative.min_num_iter=20", "dcr.iterative.min_num_iter"),
    ("dcr.iterative.model_weights_width=-1", "dcr.iterative.model_weights_width"),
    ("coadd.statistic=MODE", "statistic"),
    ("dcr.image_interp_order=2", "dcr.image_interp_order"),
    # (a subregion of 1 px ran for more than 300 s on a 128-px field: its DCR buffer is 48 px)
    ("coadd.subregion_size=[1,1]", "coadd.subregion_size must be at least 8"),
])
def test_validation_names_the_field(override, field):
    config = apply_override(Config(), override)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config.validate()


def test_negative_model_weights_width_is_fine_when_weights_are_off():
    config = apply_override(apply_override(Config(), "dcr.iterative.use_model_weights=false"),
                            "dcr.iterative.model_weights_width=-1")
    config.validate()


def test_unknown_keys_are_rejected():
    with pytest.raises(ConfigError, match="dcr.gain"):
        apply_override(Config(), "dcr.gain=1")
    with pytest.raises(ConfigError, match="not of the form"):
        apply_override(Config(), "dcr.iterative.max_num_iter")


def test_every_solver_has_its_settings_section():
    assert set(SOLVERS) == set(SOLVER_NAMES)
    for name in SOLVER_NAMES:
        assert dataclasses.is_dataclass(getattr(Config().dcr, name))


def test_a_moved_field_names_its_new_section():
    with pytest.raises(ConfigError, match="did you mean dcr.iterative.max_num_iter"):
        apply_override(Config(), "dcr.max_num_iter=5")


def test_the_word_none_is_a_value_of_text_fields_and_unsets_optional_ones(tmp_path):
    # dcr.psf_model and dcr.exact.prior take "none" as one of their values; optional fields and table
    # entries are unset by it. The written config.toml reads back to the same settings.
    from dcrcoadd.config import load_toml

    config = Config()
    for text in ("dcr.psf_model=none", "dcr.exact.prior=none", "dcr.psf_reference_fwhm=1.0",
                 "dcr.psf_reference_fwhm=none", "inputs.header_map.airmass=AM2",
                 "inputs.header_map.airmass=null"):
        apply_override(config, text)
    config.validate()
    assert config.dcr.psf_model == "none" and config.dcr.exact.prior == "none"
    assert config.dcr.psf_reference_fwhm is None and "airmass" not in (config.inputs.header_map or {})
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    back = load_toml(path)
    assert back.dcr.psf_model == "none" and back.dcr.exact.prior == "none"
    assert to_toml(back) == to_toml(config)


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    # (Windows editors save UTF-8 with a BOM; it was "not valid TOML")
    from dcrcoadd.config import load_toml
    path = tmp_path / "c.toml"
    path.write_bytes("\ufeff[dcr]\ndcr_num_subfilters = 4\n".encode())
    assert load_toml(path).dcr.dcr_num_subfilters == 4
