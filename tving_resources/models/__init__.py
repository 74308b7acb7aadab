"""The models: the runtime that hands them out, their cache, profiles and sources, the model worker."""
