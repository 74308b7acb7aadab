import dagster as dg

# One partition per video file; keys are video ids (see tving_resources.ids).
videos_partitions = dg.DynamicPartitionsDefinition(name="videos")
