#!/usr/bin/env bash
# A short GPU check of the engine: the GPU tests, then the engine benchmark on cuda and on one CPU thread.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_study.py tests/test_critic.py tests/test_generators.py tests/test_regularize.py -m "not slow" 2>&1 | tail -5
python3 benchmarks/engine.py --device cuda --epochs ${EPOCHS:-200} --rounds 3
