"""Value types without I/O: pixel boxes, mask planes, PSFs, exposures, visits, sites, bandpasses."""
