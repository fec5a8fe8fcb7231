"""Models shipped with manuscribe (data files): see NOTICE.md and docs/models.md."""
