"""Fine-tune the captioner's LoRA adapter (full profile) from a JSONL of (clip or scene, caption)."""

import dagster as dg
from pydantic import Field

from tving_assets.errors import user_errors_as_failures
from tving_assets.resources import ModelRuntimeResource, TvingSettings


class LoraTrainingConfig(dg.Config):
    dataset: str = Field(description="JSONL of training records (clip, scene or conversation format)")
    output_dir: str | None = Field(default=None, description="default: <data>/adapters/lora-<run id>")
    steps: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    frames_per_example: int = Field(default=8, ge=1, le=32)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


@dg.asset(group_name="fine_tuning", kinds={"pytorch", "peft"})
def captioner_lora_adapter(
    context: dg.AssetExecutionContext,
    config: LoraTrainingConfig,
    settings: TvingSettings,
    models: ModelRuntimeResource,
) -> dg.MaterializeResult:
    """A peft LoRA adapter for the captioner, trained with the same prompt the captions asset uses.

    Use it by setting the models resource's ``caption_adapter`` (or TVING_CAPTION_ADAPTER) to the
    adapter folder in this materialization's metadata, then re-materializing ``captions``.
    """
    from tving_resources.index.training import load_examples
    from tving_resources.models.wrappers.vlm import train_lora

    with user_errors_as_failures():
        runtime = models.runtime
        examples = load_examples(config.dataset, config.frames_per_example, settings.artifacts(models.profile_name))
        model, processor = runtime.load_vlm_for_training()
        output = config.output_dir or str(settings.paths.data_dir / "adapters" / f"lora-{context.run_id[:8]}")
        report = train_lora(
            model,
            processor,
            examples,
            output,
            steps=config.steps,
            learning_rate=config.learning_rate,
            rank=config.lora_rank,
            alpha=config.lora_alpha,
            target_modules=config.target_modules,
            base_model=runtime.profile.caption_model,
        )
    return dg.MaterializeResult(
        metadata={
            "adapter_dir": dg.MetadataValue.path(report.adapter_dir),
            "base_model": report.base_model,
            "examples": report.examples,
            "steps": report.steps,
            "first_loss": report.losses[0],
            "final_loss": report.losses[-1],
            "losses": dg.MetadataValue.json(report.losses),
            "trainable_parameters": report.trainable_parameters,
            "seconds": report.seconds,
            "use_it": dg.MetadataValue.md(
                f"Set `caption_adapter: {report.adapter_dir}` on the `models` resource "
                f"(or `TVING_CAPTION_ADAPTER={report.adapter_dir}`), then re-materialize `captions`."
            ),
        }
    )
