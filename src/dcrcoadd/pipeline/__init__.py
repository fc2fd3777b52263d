"""Running a patch end to end: preflight, stages, outputs, metadata, checkpoints and resume.

`run_patch` is the one driver (``from dcrcoadd.pipeline import run_patch``); the modules
beside it are its parts: `inputs` (expansion, band selection, preflight), `checkpoint`,
`outputs` (the files a run writes) and `metadata`.
"""

from dcrcoadd.pipeline.run_patch import ProgressEvent, RunResult, run_patch

__all__ = ["ProgressEvent", "RunResult", "run_patch"]
