import os

# quiet Tune output in test logs; loopback binding is tune_sd.tune.cluster.connect's job (tested)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
