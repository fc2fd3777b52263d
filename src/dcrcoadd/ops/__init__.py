"""Array kernels without configuration: sub-pixel shifts, stacking, detection."""
