"""Storage: engines for SQLite and PostgreSQL, the unit of work, and migrations.

SQLite gets one writer connection (every write transaction is `BEGIN IMMEDIATE`, so writers
queue instead of failing) and a pool of readers in WAL mode. PostgreSQL uses one pool for both.
"""
