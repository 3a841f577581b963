"""Training data from Debian packages: fetch, select, sketch, augment, sample, build."""
