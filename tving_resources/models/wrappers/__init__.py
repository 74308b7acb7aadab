"""One module per kind of model: speech, captioners, encoders, on-screen text, translation."""
