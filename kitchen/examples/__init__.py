"""Short programs that show kitchen's parts without the engine, for reading."""
