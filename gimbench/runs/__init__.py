"""One run's lifecycle: build its parts, fit, gather, probe and write its folder; checkpoints, resume, failures."""
