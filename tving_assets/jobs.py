import dagster as dg

from .assets import GROUP, search_index
from .finetune import captioner_lora_adapter
from .partitions import videos_partitions

# All stages of one video in one run and one process (the executor is set on Definitions), so
# each model loads once per run rather than once per step.
index_video_job = dg.define_asset_job(
    "index_video",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=videos_partitions,
    description="Index one video file: metadata, scenes, keyframes, transcript, captions, vectors, rows.",
)

refresh_search_indexes_job = dg.define_asset_job(
    "refresh_search_indexes", selection=dg.AssetSelection.assets(search_index)
)

finetune_captioner_job = dg.define_asset_job(
    "finetune_captioner",
    selection=dg.AssetSelection.assets(captioner_lora_adapter),
    description="Train the captioner's LoRA adapter (full profile) from a JSONL dataset.",
)
