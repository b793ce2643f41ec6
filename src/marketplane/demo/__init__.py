"""The demo marketplace: deterministic suppliers, clients, categories and offers on SQLite."""
