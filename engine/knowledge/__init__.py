"""Knowledge (SPEC §14): workspace documents parsed, chunked and indexed in the database, and
searched by keyword (the database's full-text search), by vector (embeddings stored beside the
chunks) or both fused."""
