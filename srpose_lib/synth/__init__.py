"""The built-in procedural synthetic-to-real benchmark (hand and body tasks)."""
