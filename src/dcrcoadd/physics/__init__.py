"""Atmospheric refraction (Stone 1996) and the per-subfilter DCR shifts it implies through a WCS."""
