"""Paper figures (filled in by the chapter that regenerates them)."""
