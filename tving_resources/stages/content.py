"""The stages that run models over a video's keyframes and sound: on-screen text, faces, speech,
captions, vectors."""

from __future__ import annotations

from tving_resources.errors import ConfigError, MissingArtifactError
from tving_resources.index.faces import SceneFaces, detect_faces
from tving_resources.index.pipeline import (
    KeyframeSet,
    SceneCaptions,
    SceneTexts,
    SceneVectors,
    caption_scenes,
    check_scene_vectors,
    embed_scenes,
    read_scene_texts,
)
from tving_resources.media.scenes import SceneDetection
from tving_resources.media.subtitles import MODES as SUBTITLE_MODES
from tving_resources.media.subtitles import sidecar_signature, transcribe_with_subtitles
from tving_resources.media.video import VideoInfo
from tving_resources.models.wrappers.speech import Transcript
from tving_resources.stages.outcome import Meta, StageOutcome
from tving_resources.stages.run import StageRun
from tving_resources.store.schema import runtime_stamp


def onscreen_text(run: StageRun) -> StageOutcome:
    """Text on screen (titles, captions, signs) read from each scene's middle keyframe with
    Tesseract (Korean + English); lines under the confidence floor are dropped."""
    video, runtime = run.video, run.runtime
    with run.guard():
        chain = video.lineage("keyframes")
        detection = video.load("scenes", SceneDetection, chain["scenes"])
        frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
        reader = runtime.text_reader()
        produced = run.produce(
            {"keyframes": chain["keyframes"]},
            run.params(),
            lambda _out, _final: (
                read_scene_texts(detection, frames, reader, run.artifacts.base, runtime.config.ocr_frames_per_scene)
                if reader is not None
                else SceneTexts.empty(len(detection.scenes))
            ),
            SceneTexts,
        )
    texts = produced.value
    found = [(i, t) for i, t in enumerate(texts.texts) if t]
    sample = "\n".join(f"| {i} | {t.replace(chr(10), ' / ')[:120]} |" for i, t in found[:10])
    metadata = run.metadata(
        produced,
        scenes_with_text=len(found),
        model=texts.model_id,
        sample=Meta("md", f"| scene | text |\n|---|---|\n{sample}"),
    )
    return run.outcome(metadata)


def faces(run: StageRun) -> StageOutcome:
    """Faces in each scene's keyframes (dlib: detected, aligned, a 128-d descriptor and a face
    thumbnail each); none stored with `faces: false` on the models resource."""
    video, runtime = run.video, run.runtime
    with run.guard():
        chain = video.lineage("keyframes")
        frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
        produced = run.produce(
            {"keyframes": chain["keyframes"]},
            run.params(),
            lambda out, final: (
                detect_faces(
                    run.video_id, frames, runtime.face_encoder(), run.artifacts.base, out, run.artifacts.relative(final)
                )
                if runtime.config.faces
                else SceneFaces.off()
            ),
            SceneFaces,
        )
    found = produced.value
    metadata = run.metadata(
        produced,
        faces=len(found.faces),
        scenes_with_faces=len({f.scene_index for f in found.faces}),
        model=found.model_id or "off",
    )
    return run.outcome(metadata)


def transcript(run: StageRun) -> StageOutcome:
    """Speech segments with timestamps and language (faster-whisper + VAD); empty without audio."""
    with run.guard():
        video_key = run.video.key_of("video")
        info = run.video.load("video", VideoInfo, video_key)
        mode = run.settings.subtitles
        if mode not in SUBTITLE_MODES:
            raise ConfigError(f"subtitles must be one of {', '.join(SUBTITLE_MODES)}, not {mode!r}")
        inputs = {"video": video_key, "sidecars": sidecar_signature(info.path) if mode != "off" else ""}
        produced = run.produce(
            inputs,
            run.params(),
            run.reading_file(info, lambda _out, _final: transcribe_with_subtitles(info, run.runtime, mode)),
            Transcript,
        )
    result = produced.value
    metadata = run.metadata(
        produced,
        segments=len(result.segments),
        language=result.language or "none",
        characters=len(result.text),
        model=result.model_id,
        audio_s=result.audio_seconds,
        preview=Meta("text", result.text[:500]),
    )
    return run.outcome(metadata)


def captions(run: StageRun) -> StageOutcome:
    """One caption per scene from its keyframes, with the scene's transcript stored beside it."""
    video = run.video
    with run.guard():
        chain = video.lineage("keyframes")
        speech_key = video.key_of("transcript")
        if video.record("transcript", speech_key).inputs.get("video") != chain["video"]:
            raise MissingArtifactError(
                f"{run.video_id}: keyframes and transcript come from different versions of the file; "
                "materialize both (or the whole index_video job) again"
            )
        produced = run.produce(
            {"keyframes": chain["keyframes"], "scenes": chain["scenes"], "transcript": speech_key},
            run.params(),
            lambda _out, _final: caption_scenes(
                video.load("scenes", SceneDetection, chain["scenes"]),
                video.load("keyframes", KeyframeSet, chain["keyframes"]),
                video.load("transcript", Transcript, speech_key),
                run.runtime.captioner(),
                run.artifacts.base,
                batch_size=run.runtime.config.caption_batch_size,
            ),
            SceneCaptions,
        )
    result = produced.value
    sample = "\n".join(f"| {c.scene_index} | {c.caption} |" for c in result.scenes[:10])
    empty = [c.scene_index for c in result.scenes if not c.caption.strip()]
    metadata = run.metadata(
        produced,
        captions=len(result.scenes),
        model=result.model_id,
        sample=Meta("md", f"| scene | caption |\n|---|---|\n{sample}"),
    )
    problems = [f"scenes without caption: {empty[:10]}"] if empty else []
    return run.outcome(metadata, (run.check("every_scene_has_caption", problems, captions=len(result.scenes)),))


def scene_vectors(run: StageRun) -> StageOutcome:
    """Unit-norm text vectors of caption and transcript, and one vector per keyframe."""
    video, runtime = run.video, run.runtime
    with run.guard():
        chain = video.lineage("captions")
        ocr_key = video.key_of("ocr")
        if video.record("ocr", ocr_key).inputs.get("keyframes") != chain["keyframes"]:
            raise MissingArtifactError(
                f"{run.video_id}: the on-screen text and the captions come from different keyframes; "
                "materialize onscreen_text (or the whole index_video job) again"
            )
        produced = run.produce(
            {"captions": chain["captions"], "keyframes": chain["keyframes"], "ocr": ocr_key},
            run.params(),
            lambda _out, _final: embed_scenes(
                video.load("captions", SceneCaptions, chain["captions"]),
                video.load("keyframes", KeyframeSet, chain["keyframes"]),
                runtime.text_encoder(),
                runtime.frame_encoder(),
                run.artifacts.base,
                video.load("ocr", SceneTexts, ocr_key),
                runtime.transcript_encoder(),
            ),
            SceneVectors,
        )
    vectors = produced.value
    stamp = runtime_stamp(runtime)  # the encoders' declared dimensions
    problems = check_scene_vectors(vectors, video.load("captions", SceneCaptions, chain["captions"]), stamp)
    metadata = run.metadata(
        produced,
        scenes=int(vectors.caption.shape[0]),
        text_dim=int(vectors.caption.shape[1]),
        frame_vectors=int(vectors.frames.shape[0] * vectors.frames.shape[1]),
        frame_dim=int(vectors.frames.shape[2]),
        text_model=vectors.text_model,
        frame_model=vectors.frame_model,
    )
    check = run.check("vectors_are_finite_unit_norm", problems, text_dim=stamp.text_dim, frame_dim=stamp.frame_dim)
    return run.outcome(metadata, (check,))
