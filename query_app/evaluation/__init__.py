"""Search quality: labelled queries, recall@k and MRR per kind, the evaluation set, reports."""
