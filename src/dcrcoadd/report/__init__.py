"""The report figure of a run."""
