"""Search, video-to-text, CLI and web API over the scene index. Never imports Dagster."""
