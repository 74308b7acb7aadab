"""The assets: one partition per video for the indexing stages (``video``), the search
indexes and quality (``search``), the captioner's adapter (``finetune``), and what they share."""
