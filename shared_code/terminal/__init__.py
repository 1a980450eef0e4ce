"""What a person sees on a terminal: tables (pure rows) and progress (rich), plain text everywhere else."""
