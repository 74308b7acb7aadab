"""The LanceDB scene tables: schema, the per-profile store, the registry of live and building tables."""
