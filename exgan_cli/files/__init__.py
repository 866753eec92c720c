"""Photos in and out: decoding with orientation and profiles, atomic writes, JPEG block patching."""
