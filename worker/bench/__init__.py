"""`capi-worker bench`: the figures users size clusters by (issue 6)."""
