"""Speech recognition for dictation: engines, the radiology language model, commands."""
