#!/usr/bin/env bash
# A short GPU check of the engine: the GPU tests, the engine benchmark on cuda, then the population
# benchmark (packed critics) on cuda for P = 1, 16, 64, 256.
#   benchmarks/gpu_check.sh [DEVICE]     (default cuda; EPOCHS, POP_EPOCHS, SIZES override the defaults)
# Goals of the population rows (issue 14): at P = 256, >= 50x the member-epochs/s of one critic
# ("x solo"), and at most 2x the time per epoch of P = 1 ("x ms P=1").
set -uo pipefail
DEVICE=${1:-${DEVICE:-cuda}}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || status=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || status=1
python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_study.py tests/test_critic.py tests/test_generators.py tests/test_regularize.py tests/test_population.py -m "not slow" 2>&1 | tail -5
python3 benchmarks/engine.py --device "$DEVICE" --epochs ${EPOCHS:-200} --rounds 3 || status=1
# each timed section synchronises the device before and after (benchmarks/population.py: timed)
python3 benchmarks/population.py --device "$DEVICE" --sizes ${SIZES:-1 16 64 256} --epochs ${POP_EPOCHS:-40} --rounds 3 || status=1
exit $status
