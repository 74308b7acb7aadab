"""The web app's routes, one router per area: service (liveness, readiness, login), search,
library (videos, files, uploads, failures, tables, indexing status), describe (video-to-text)."""
