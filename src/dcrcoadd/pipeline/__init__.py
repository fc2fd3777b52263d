"""Running a patch end to end: preflight, stages, outputs, metadata, checkpoints and resume."""
