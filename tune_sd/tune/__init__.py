"""The Ray Tune layer: search spaces, trainable, sweeps, results, logging (the only place that imports ray)."""
