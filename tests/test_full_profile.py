"""The full profile's code paths, with tiny random models written to a temporary models folder
and loaded through exactly the functions that load real weights."""

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_resources
from media import SPOKEN_SCENES
from PIL import Image

from tving_assets.resources import ModelRuntimeResource
from tving_dev.tiny_models import LAYOUT, build_full_profile
from tving_resources.errors import ModelError, ModelNotAvailableError, StoreError
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.models.gpu import map_in_batches, torch_dtype
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.models.wrappers.captioning import SceneFrames
from tving_resources.models.wrappers.vlm import INSTRUCTION, SPEECH_CLOSE, SPEECH_OPEN, prompt_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_layout(tiny_models):
    return build_full_profile(tiny_models)  # already built: returns where each model is


@pytest.fixture(scope="session")
def full_runtime(tiny_models):
    return ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tiny_models)))


@pytest.fixture(scope="module")
def frames(sample_videos):
    from tving_resources.media.video import FrameReader, probe_video

    info = probe_video(sample_videos["bikes.mp4"], "bikes-0000000000")
    reader = FrameReader(info.path, (info.width, info.height), max_side=256)
    return [Image.fromarray(f) for f in reader.frames_at([0.5, 2.0, 4.0, 6.0, 8.0, 9.5])]


def test_tiny_models_sit_where_the_full_profile_looks(tiny_models, tiny_layout):
    assert {role: path.relative_to(tiny_models).as_posix() for role, path in tiny_layout.items()} == LAYOUT


def test_prompt_marks_each_frame_and_separates_the_speech(full_runtime):
    processor = full_runtime.captioner().processor
    text = prompt_text(processor, 3, "Hello there.")
    assert [f"Frame {i}:" in text for i in (1, 2, 3)] == [True] * 3
    assert text.count("<|image_pad|>") == 3
    assert f"{SPEECH_OPEN}\nHello there.\n{SPEECH_CLOSE}" in text and text.index(SPEECH_CLOSE) < text.index(INSTRUCTION)
    assert SPEECH_OPEN not in prompt_text(processor, 2, "  ")  # no speech, no speech block


def test_vlm_captions_two_scenes_in_one_batch(full_runtime, frames, monkeypatch):
    captioner = full_runtime.captioner()
    calls = []
    original = captioner.model.generate
    monkeypatch.setattr(captioner.model, "generate", lambda **kw: calls.append(kw) or original(**kw))
    results = captioner.caption([SceneFrames(0, tuple(frames[:3]), "A speech."), SceneFrames(1, tuple(frames[3:]), "")])
    assert len(results) == 2 and all(r.caption for r in results)
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == 2 and calls[0]["do_sample"] is False


def test_angle_prompt_on_queries_only(full_runtime, monkeypatch):
    from angle_emb import Prompts

    encoder = full_runtime.text_encoder()
    assert encoder.dim == 32  # the tiny BERT's width (1024 for UAE-Large-V1)
    prompts = []
    original = encoder.angle.encode
    monkeypatch.setattr(
        encoder.angle, "encode", lambda texts, **kw: prompts.append(kw.get("prompt")) or original(texts, **kw)
    )
    passages = encoder.encode_passages(["a man walks a dog", ""])
    query = encoder.encode_query("a man walks a dog")
    assert prompts == [None, Prompts.C]
    assert passages.shape == (2, 32) and not passages[1].any()
    assert np.linalg.norm(passages[0]) == pytest.approx(1, abs=1e-5) and np.linalg.norm(query) == pytest.approx(
        1, abs=1e-5
    )
    assert not np.allclose(query, passages[0])  # the prompt changed the query's vector


def test_open_clip_encodes_keyframes_and_queries(full_runtime, frames):
    encoder = full_runtime.frame_encoder()
    vectors = encoder.encode_images(frames)
    query = encoder.encode_query("people riding bicycles")
    assert vectors.shape == (6, encoder.dim) and query.shape == (encoder.dim,)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not encoder.queries_in_text_space and not encoder.uses_frame_descriptions


def test_tiny_whisper_transcribes_a_generated_clip(full_runtime, speech_clip):
    transcript = full_runtime.speech().transcribe(speech_clip[0], has_audio=True)
    assert transcript.model_id == "Systran/faster-whisper-large-v3"
    assert transcript.audio_seconds == pytest.approx(14.5, abs=0.5) and transcript.language


def test_batched_speech_pipeline(tiny_models, speech_clip):
    """speech_batch_size > 1 goes through faster-whisper's BatchedInferencePipeline (for GPUs)."""
    runtime = ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tiny_models), speech_batch_size=2))
    recognizer = runtime.speech()
    transcript = recognizer.transcribe(speech_clip[0], has_audio=True)
    assert recognizer._batched is not None and transcript.audio_seconds == pytest.approx(14.5, abs=0.5)


def test_marian_translates_a_hangul_query(full_runtime):
    (english,) = full_runtime.translator().translate(["비 오는 밤의 도시 거리"])
    assert english and isinstance(english, str)
    (korean,) = full_runtime.output_translator().translate(["A rainy night in the city."])
    assert korean


def test_dtype_follows_the_device(monkeypatch):
    assert torch_dtype("cpu") == torch.float32
    assert torch_dtype("cpu", "bfloat16") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert torch_dtype("cuda:0") == torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert torch_dtype("cuda:0") == torch.bfloat16


def test_out_of_memory_halves_the_batch_then_fails_clearly():
    sizes = []

    def fake_allocator(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    assert map_in_batches(list(range(7)), 8, fake_allocator, "test") == [x * 10 for x in range(7)]
    assert sizes == [7, 4, 2, 2, 2, 1]  # 8 -> 4 -> 2, then the rest at 2

    def always_oom(batch):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(ModelError, match="out of GPU memory even with batch size 1"):
        map_in_batches([1, 2, 3], 4, always_oom, "captions (test)")
    with pytest.raises(ValueError, match="other"):
        map_in_batches([1], 4, lambda batch: (_ for _ in ()).throw(ValueError("other")), "x")


def test_vlm_survives_an_out_of_memory_batch(full_runtime, frames, monkeypatch):
    captioner = full_runtime.captioner()
    original = captioner.model.generate

    def generate(**kwargs):
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(**kwargs)

    monkeypatch.setattr(captioner.model, "generate", generate)
    results = captioner.caption([SceneFrames(i, (frames[i],), "") for i in range(3)])
    assert len(results) == 3 and all(r.caption for r in results)


def test_missing_weights_error_names_model_places_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runtime = ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tmp_path / "empty")))
    with pytest.raises(ModelNotAvailableError) as error:
        runtime.text_encoder()
    message = str(error.value)
    assert "'WhereIsAI/UAE-Large-V1'" in message and "text encoder" in message
    assert str(tmp_path / "empty" / "WhereIsAI" / "UAE-Large-V1") in message
    assert "tving models pull --profile full" in message and "HF_HUB_OFFLINE=1" in message
    with pytest.raises(ModelNotAvailableError, match="ViT-L-14/openai"):
        runtime.frame_encoder()


def test_models_cli_lists_and_pulls(tiny_models, tmp_path, monkeypatch):
    from tving_cli.main import main

    listed = json.loads(CliRunner().invoke(main, ["models", "list", "--profile", "full", "--models-dir",
                                                  str(tiny_models), "--json"]).output)  # fmt: skip
    assert all(m["present"] for m in listed["models"]) and len(listed["models"]) == 7
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = CliRunner().invoke(main, ["models", "pull", "--models-dir", str(tmp_path / "new")])
    assert offline.exit_code == 2 and "could not download" in offline.output and "HF_HUB_OFFLINE" in offline.output

    fetched = []

    def fake_snapshot(repo_id, local_dir):  # the hub client, replaced: this machine has no hub
        fetched.append(repo_id)
        os.makedirs(local_dir)
        with open(os.path.join(local_dir, "config.json"), "w") as handle:
            handle.write("{}")

    def fake_whisper(size_or_id, output_dir):
        fetched.append(size_or_id)
        os.makedirs(output_dir)
        with open(os.path.join(output_dir, "model.bin"), "wb") as handle:
            handle.write(b"0")

    import faster_whisper
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(faster_whisper, "download_model", fake_whisper)
    pulled = CliRunner().invoke(main, ["models", "pull", "--models-dir", str(tmp_path / "new")])
    assert pulled.exit_code == 0, pulled.output
    assert {"Systran/faster-whisper-large-v3", "WhereIsAI/UAE-Large-V1", "intfloat/multilingual-e5-large"} <= set(
        fetched
    )
    assert any("vit_large_patch14_clip_224.openai" in r for r in fetched)  # open_clip's own hub copy
    assert (tmp_path / "new" / "Qwen" / "Qwen2-VL-2B-Instruct" / "config.json").is_file()
    assert "saved" in pulled.output


def test_finetuning_asset_trains_an_adapter_the_captioner_loads(tmp_path, tiny_models, speech_clip, frames):
    import dagster as dg

    from tving_assets.assets.finetune import captioner_lora_adapter

    image = tmp_path / "frame.jpg"
    frames[0].save(image)
    dataset = tmp_path / "captions.jsonl"
    records = [
        {"video": str(speech_clip[0]), "start": 0.0, "end": 4.0, "caption": "A chef cooks pasta."},
        {"image": "frame.jpg", "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                                 {"from": "gpt", "value": "People ride bikes in a street."}]},
    ]  # fmt: skip
    dataset.write_text("\n".join(json.dumps(r) for r in records))
    adapter = tmp_path / "adapter"
    resources = make_resources(tmp_path / "home")
    resources["models"] = ModelRuntimeResource(profile="full", models_dir=str(tiny_models))
    result = dg.materialize(
        [captioner_lora_adapter],
        resources=resources,
        run_config={"ops": {"captioner_lora_adapter": {"config": {
            "dataset": str(dataset), "output_dir": str(adapter), "steps": 2, "learning_rate": 0.01,
            "frames_per_example": 2, "lora_rank": 4, "lora_alpha": 8}}}},
    )  # fmt: skip
    assert result.success
    metadata = result.asset_materializations_for_node("captioner_lora_adapter")[0].metadata
    assert metadata["steps"].value == 2 and len(metadata["losses"].value) == 2
    assert (adapter / "adapter_config.json").is_file() and (adapter / "training_metrics.json").is_file()

    tuned = ModelRuntime(
        RuntimeConfig(profile="full", models_dir=str(tiny_models), model_overrides={"caption_adapter": str(adapter)})
    ).captioner()
    base = ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tiny_models))).captioner()
    assert tuned.model_id.endswith(f"+{adapter}")
    q_tuned = dict(tuned.model.named_parameters())
    q_base = dict(base.model.named_parameters())
    name = next(n for n in q_base if n.endswith("layers.0.self_attn.q_proj.weight"))
    assert not torch.allclose(q_tuned[name], q_base[name])  # the trained LoRA delta was merged in
    results = tuned.caption([SceneFrames(0, tuple(frames[:2]), "x"), SceneFrames(1, tuple(frames[2:4]), "")])
    assert len(results) == 2 and all(r.caption for r in results)


def test_full_profile_index_end_to_end_then_search(tmp_path, tiny_models, speech_clip, monkeypatch):
    """Profile full, weights from the temporary models folder: the Dagster stages, then `tving search`."""
    from tving_assets.indexing import index_videos
    from tving_cli.main import main
    from tving_resources.config import resolve_paths
    from tving_resources.store.maintenance import inspect_tables

    home = tmp_path / "home"
    resources = make_resources(home)
    resources["models"] = ModelRuntimeResource(profile="full", models_dir=str(tiny_models))
    before = MODEL_CACHE.load_counts()
    (result,) = index_videos([str(speech_clip[0])], resources)
    assert result.ok, result.error
    (table,) = inspect_tables(resolve_paths(home=home).lancedb_uri)
    assert table.name == "scenes_full" and table.rows == result.scenes == 3
    assert (table.stamp.text_dim, table.stamp.frame_dim) == (32, 16)
    (folder,) = (resolve_paths(home=home).artifacts_dir / "full" / result.video_id / "keyframes").iterdir()
    assert len(list(folder.glob("*.jpg"))) == 3 * 8  # the full profile's 8 frames per scene
    loaded_now = {k: v - before.get(k, 0) for k, v in MODEL_CACHE.load_counts().items() if v - before.get(k, 0)}
    assert all(v == 1 for v in loaded_now.values()), loaded_now

    monkeypatch.setenv("TVING_HOME", str(home))
    monkeypatch.setenv("TVING_MODELS_DIR", str(tiny_models))
    out = CliRunner().invoke(main, ["--profile", "full", "search", SPOKEN_SCENES[0].korean_topic, "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert len(payload["results"]) == 3 and payload["translated"] is True
    assert payload["query_used"] != payload["query"]  # the translation is shown with the results
    lite = CliRunner().invoke(main, ["--profile", "lite", "search", "rain"])
    assert lite.exit_code == 2 and "holds scenes_full" in lite.output


def test_lite_query_on_a_full_table_fails_clearly(tmp_path):
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.schema import ModelStamp

    uri = str(tmp_path / "db")
    full = ModelStamp("full", "WhereIsAI/UAE-Large-V1", 1024, "ViT-L-14/openai", 768, "qwen", "whisper")
    SceneStore(uri, full).table(create=True)
    with pytest.raises(StoreError, match="holds scenes_full"):
        SceneStore(uri, ModelStamp("lite", "e5", 384, "labels", 384, "effnet", "base")).table()


def test_bench_models_runs_on_tiny_models(tiny_models):
    from tving_dev.bench.indexing import run_models_benchmark

    report = run_models_benchmark("full", tiny=True, frames=8, scenes=2, models_dir=str(tiny_models))
    assert set(report["stages"]) == {"frame_encoder", "captioner", "text_encoder", "speech"}
    assert report["stages"]["captioner"]["scenes_per_s"] > 0 and report["gpu_peak_memory_mb"] is None
