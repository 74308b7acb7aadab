"""Tiny random-initialised stand-ins for the full profile's models, built offline.

They are saved in the very layout the full profile loads from (``<models>/<hub id>``), so the
tests and ``tving bench models --tiny`` exercise exactly the loaders that real weights go through.
Their outputs are noise; their shapes, tokenizers, processors and file formats are the real ones.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

# Where the full profile looks for each model inside the models folder.
LAYOUT = {
    "captioner": "Qwen/Qwen2-VL-2B-Instruct",
    "text_encoder": "WhereIsAI/UAE-Large-V1",
    "transcript_encoder": "intfloat/multilingual-e5-large",
    "frame_encoder": "open_clip/ViT-L-14/openai",
    "speech": "Systran/faster-whisper-large-v3",
    "translator": "Helsinki-NLP/opus-mt-ko-en",
    "output_translator": "Helsinki-NLP/opus-mt-tc-big-en-ko",
}

# Qwen2-VL-2B-Instruct's chat template, trimmed to what captions use (images, text).
_QWEN2VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
_MARIAN_LINES = [
    "남자가 공원에서 개를 산책시킨다.", "빨간 자동차가 거리를 달린다.", "요리사가 주방에서 파스타를 만든다.",
    "비 오는 밤의 도시 거리", "축구 선수들이 경기장에서 우승을 축하한다.", "고양이가 소파에서 잔다.",
    "A man walks a dog in the park.", "A red car drives down the street.", "A chef makes pasta in the kitchen.",
    "A rainy night on the city streets.", "Football players celebrate a victory.", "A cat sleeps on the sofa.",
]  # fmt: skip


def build_qwen2vl(out_dir: Path) -> Path:
    """Qwen2-VL with a byte-level tokenizer, 2 layers of width 64, 4 visual tokens per image."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorFast,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    for special in _QWEN_SPECIALS:
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=[], padding_side="left", errors="replace", unk_token=None, bos_token=None,
        eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=_QWEN_SPECIALS[1:],
    )  # fmt: skip
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorFast(**pixels, patch_size=14, merge_size=2, temporal_patch_size=2),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=tokenizer,
        chat_template=_QWEN2VL_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            # mrope sections must sum to head_dim / 2 = 64 / 4 / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": vocab["<|endoftext|>"], "eos_token_id": vocab["<|im_end|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        # the merger's output width must equal the text hidden size
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = vocab["<|endoftext|>"]
    model.generation_config.eos_token_id = vocab["<|im_end|>"]
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# Hangul words for the tiny multilingual encoder's vocabulary (any Hangul is [UNK] otherwise)
_KOREAN_WORDS = ("서울", "날씨", "비", "요리", "축구", "뉴스", "오늘", "시장", "사람", "음식")


def build_bert(out_dir: Path, hidden_size: int = 32, extra_words: tuple[str, ...] = ()) -> Path:
    """A BERT that AnglE loads like UAE-Large-V1 (512 positions: AnglE's default max_length); with
    Hangul words, the stand-in for multilingual-e5-large (loaded by transformers, mean pooling)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    words = [
        "a",
        "the",
        "man",
        "woman",
        "dog",
        "cat",
        "chef",
        "pasta",
        "rain",
        "city",
        "street",
        "football",
        "team",
        "car",
        "represent",
        "sentence",
        "searching",
        *extra_words,
    ]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words)), *letters, *[f"##{c}" for c in letters]]
    vocab += list(".,:!?'")
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(out_dir / "vocab.txt"), do_lower_case=True, model_max_length=512).save_pretrained(
        out_dir
    )
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=512)  # fmt: skip
    BertModel(config).save_pretrained(out_dir)
    return out_dir


def build_open_clip(out_dir: Path, embed_dim: int = 16) -> Path:
    """A CLIP in open_clip's hub layout (open_clip_config.json + safetensors): ``local-dir:`` loads it.

    The text vocabulary stays 49408: open_clip's bundled tokenizer emits ids up to that.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "patch_size": 16, "layers": 1, "width": 32, "head_width": 16,
                       "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1,
                     "mlp_ratio": 2.0},
    }  # fmt: skip
    preprocess_cfg = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                      "interpolation": "bicubic", "resize_mode": "shortest"}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    )
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_dir / "open_clip_model.safetensors")
    return out_dir


def build_whisper_ct2(out_dir: Path) -> Path:
    """A multilingual Whisper converted with CTranslate2 (int8), loadable by faster-whisper.

    Token layout follows whisper-tiny: byte symbols, the empty token (CTranslate2 4.8 reads the
    model as multilingual only with it), the language and task tokens, ``<|notimestamps|>`` last.
    """
    import ctranslate2
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    vocab[""] = len(vocab)
    languages = [code for code in LANGUAGES if code != "yue"]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{c}|>" for c in languages], "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # fmt: skip
    for special in specials:
        vocab[special] = len(vocab)
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], additional_special_tokens=specials[1:], unk_token=specials[0],
                                 bos_token=specials[0], eos_token=specials[0], pad_token=specials[0])  # fmt: skip
    suppress_at_start = [vocab["Ġ"], eot]
    config = WhisperConfig(
        vocab_size=len(vocab) + 1501, num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=sot, pad_token_id=eot,
        bos_token_id=eot, eos_token_id=eot, suppress_tokens=[], begin_suppress_tokens=suppress_at_start,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, suppress_tokens=[],
        begin_suppress_tokens=suppress_at_start, no_timestamps_token_id=vocab["<|notimestamps|>"], max_length=448,
        is_multilingual=True, lang_to_id={f"<|{c}|>": vocab[f"<|{c}|>"] for c in languages},
        task_to_id={"translate": vocab["<|translate|>"], "transcribe": vocab["<|transcribe|>"]},
        alignment_heads=[[0, 0], [0, 1]],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as hf_dir:
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        WhisperFeatureExtractor(feature_size=80).save_pretrained(hf_dir)
        # copy the tokenizer and feature extractor: without them faster-whisper fetches them from the hub
        converter = ctranslate2.converters.TransformersConverter(
            hf_dir, copy_files=["tokenizer.json", "preprocessor_config.json"]
        )
        converter.convert(str(out_dir), quantization="int8", force=True)
    return out_dir


def build_marian(out_dir: Path, source_lang: str, target_lang: str) -> Path:
    """A MarianMT with a SentencePiece vocabulary trained on a few Korean and English lines."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_MARIAN_LINES * 4), model_writer=buffer, vocab_size=200, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, unk_id=1, eos_id=0, bos_id=-1, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    for name in ("source.spm", "target.spm"):
        (out_dir / name).write_bytes(buffer.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    vocab["<pad>"] = len(vocab)  # Marian: pad is the last id, and the decoder start token
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    MarianTokenizer(
        source_spm=str(out_dir / "source.spm"),
        target_spm=str(out_dir / "target.spm"),
        vocab=str(out_dir / "vocab.json"),
        source_lang=source_lang,
        target_lang=target_lang,
    ).save_pretrained(out_dir)
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=512,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0, scale_embedding=True,
        share_encoder_decoder_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = MarianMTModel(config)
    model.generation_config.num_beams = 2
    model.generation_config.max_new_tokens = 16
    model.generation_config.bad_words_ids = [[pad]]
    model.save_pretrained(out_dir)
    return out_dir


def build_full_profile(models_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Every full-profile model, tiny, where the full profile looks for it (existing ones kept)."""
    root = Path(models_dir)
    builders = {
        "captioner": build_qwen2vl,
        "text_encoder": build_bert,
        "transcript_encoder": lambda d: build_bert(d, hidden_size=24, extra_words=_KOREAN_WORDS),
        "frame_encoder": build_open_clip,
        "speech": build_whisper_ct2,
        "translator": lambda d: build_marian(d, "ko", "en"),
        "output_translator": lambda d: build_marian(d, "en", "ko"),
    }
    built = {}
    for role, relative in LAYOUT.items():
        target = root / relative
        if not target.exists():
            staging = target.with_name(target.name + ".building")
            shutil.rmtree(staging, ignore_errors=True)
            staging.parent.mkdir(parents=True, exist_ok=True)
            builders[role](staging)
            staging.rename(target)
        built[role] = target
    return built
