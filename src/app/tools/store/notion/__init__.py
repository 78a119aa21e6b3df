"""The Notion adapter of the store: API client, property mapping, page blocks, schema checks and the store."""
