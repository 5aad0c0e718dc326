"""fillstream: never lose, never duplicate, never be late with a fill."""
