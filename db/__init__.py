"""The job store: SQLModel tables, the engine, and Alembic migrations."""
