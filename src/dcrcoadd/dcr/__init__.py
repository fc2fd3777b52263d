"""The DCR model: subfilter sky images, their forward model, per-tile solvers and assembly."""
