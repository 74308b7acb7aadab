"""Indexing: the stages as functions, their versioned results, staleness, locks, commits and removals."""
