"""Each setting is declared once: the Dagster resources are the library's settings models (same
fields, defaults and descriptions), TVING_* variables are read in one module, and the
configuration reference is generated from the models."""

import re
from pathlib import Path

from tving_assets.resources import ModelRuntimeResource, TvingSettings
from tving_dev.configuration_doc import TARGET, render
from tving_resources.models.runtime import RuntimeConfig
from tving_resources.settings import IndexSettings

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("tving_resources", "query_app", "tving_assets", "tving_cli")


def _fields(model) -> dict:
    return {
        n: (f.annotation, f.get_default(call_default_factory=True), f.description)
        for n, f in model.model_fields.items()
    }


def test_resources_are_the_library_settings_models():
    assert _fields(TvingSettings) == _fields(IndexSettings)
    extra = set(ModelRuntimeResource.model_fields) - set(RuntimeConfig.model_fields)
    assert extra == {"model_worker"}
    assert {n: v for n, v in _fields(ModelRuntimeResource).items() if n != "model_worker"} == _fields(RuntimeConfig)
    # and what a resource holds reaches the library unchanged
    resource = ModelRuntimeResource(ocr=False, speech_beam_size=3, caption_adapter="/adapters/a")
    assert resource.runtime.config == RuntimeConfig(ocr=False, speech_beam_size=3, caption_adapter="/adapters/a")
    assert TvingSettings(scene_threshold=31.0).scene_settings() == IndexSettings(scene_threshold=31.0).scene_settings()


def test_tving_variables_are_read_in_one_module():
    read = re.compile(r"""(environ\.get\(\s*["']TVING_|getenv\(\s*["']TVING_|environ\[["']TVING_\w+["']\](?!\s*=))""")
    readers = sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if read.search(path.read_text(encoding="utf-8"))
    )
    assert readers == ["tving_resources/config.py"], readers


def test_the_configuration_reference_is_generated_from_the_models():
    assert TARGET.read_text(encoding="utf-8") == render(), "run: python -m tving_dev.configuration_doc"
    for name in (*IndexSettings.model_fields, *RuntimeConfig.model_fields, "model_worker"):
        assert f"`{name}`" in render()
