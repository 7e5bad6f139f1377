#!/usr/bin/env bash
# The GPU checks of docs/gpu/: the conformance suite on cpu and cuda:0, the tape tests on
# cuda:0 (GPU_DEVICE), and the benchmarks (steps and what the user calls) on cuda:0, for torch and
# jax where installed. Usage: bash benchmarks/gpu.sh OUT_DIR [SECONDS]
#
# Each step has a deadline inside SECONDS (default 480) and writes its log and report to
# OUT_DIR; a step that fails or runs out of time does not stop the next. Where unidl is not
# installed (a bare machine), wheels in .gpu/ (`pip wheel --no-deps . ./plugins/unidl_jax -w
# .gpu`) give its entry points, and the code runs from this checkout.
set -u
out=${1:?usage: gpu.sh OUT_DIR [SECONDS]}
budget=${2:-480}
dev=${GPU_DEVICE:-cuda:0}
mkdir -p "$out"
start=$(date +%s)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

if ls .gpu/*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/unidl-site .gpu/*.whl
    export PYTHONPATH="$PWD:$PWD/plugins/unidl_jax:$PWD/plugins:$PWD/conformance:/tmp/unidl-site"
fi

left() { echo $((budget - ($(date +%s) - start))); }

# step NAME MAX_SECONDS COMMAND...: run with the smaller of MAX_SECONDS and what is left
step() {
    local name=$1 max=$2
    shift 2
    local t=$(left)
    ((t > max)) && t=$max
    if ((t < 15)); then
        echo "== $name: skipped (no time left)" | tee -a "$out/summary.txt"
        return
    fi
    echo "== $name (at most ${t}s): $*"
    local t0=$(date +%s)
    timeout -k 5 "$t" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $(($(date +%s) - t0))s" | tee -a "$out/summary.txt"
    tail -n 25 "$out/$name.log"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    $py -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.is_available())"
    $py -c "import jax; print('jax', jax.__version__, jax.devices())"
    $py -m unidl backends
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt"

step conformance-torch 200 $py -m unidl conformance --backend torch --no-progress \
    --report "$out/conformance-torch.md" --report "$out/conformance-torch.json"
UNIDL_BACKEND=torch UNIDL_DEVICE=$dev step tests-cuda 90 $py -m pytest -q -x -p no:cacheprovider \
    tests/test_torch_tape.py
bench="benchmarks/run.py --suites native,loop --models mlp,cnn,lstm --no-keras --no-import \
    --conformance off --device $dev --repeats 10 --loop-budget-s 4"
step bench-torch 200 $py $bench --backend torch --out "$out/bench-torch"
step bench-jax 160 $py $bench --backend jax --out "$out/bench-jax"
step conformance-jax 200 $py -m unidl conformance --backend jax --device $dev --quick \
    --no-progress --report "$out/conformance-jax.md"
echo "total $(($(date +%s) - start))s" | tee -a "$out/summary.txt"
