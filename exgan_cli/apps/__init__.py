"""The runners of the stages: one photo, an album, inspect."""
