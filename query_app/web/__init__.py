"""The web pages and HTTP API (FastAPI on Granian), and what guards them."""
