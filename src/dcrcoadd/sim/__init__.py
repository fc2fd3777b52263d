"""GalSim simulation of warps with real DCR, their truth images and catalogues."""
