#!/usr/bin/env bash
# N local CPU processes joined into one multi-host sslax run (jax.distributed over gloo).
#
#   launch/local_multiprocess.sh N [arguments of python -m sslax.train]
#   launch/local_multiprocess.sh 2 --config=configs/simclr_mnist.py:tiny --workdir=runs/mh
#
# Every process gets SSLAX_COORDINATOR_ADDRESS=127.0.0.1:<a free port>, SSLAX_NUM_PROCESSES=N,
# SSLAX_PROCESS_ID=i (see sslax/distributed.py) and DEVICES_PER_PROCESS simulated CPU devices.
# Process 0 prints to this terminal; process i > 0 writes LOG_DIR/process_<i>.log.
# `kill -TERM $(cat LOG_DIR/process_<i>.pid)` preempts one process: all of them save one step.
#
# Environment (defaults in brackets):
#   DEVICES_PER_PROCESS  CPU devices per process [8 / N, at least 1]
#   TIMEOUT              seconds before every process gets SIGTERM (saves, exits; status 124)
#                        [3600]
#   LOG_DIR              where the logs of processes 1..N-1 go [a new temporary directory]
#   PYTHON               interpreter [.venv/bin/python of this checkout if present, else python3]
#   SSLAX_INIT_TIMEOUT, SSLAX_HEARTBEAT_TIMEOUT  passed on [60, 20 here]
#
# CPU collectives (gloo) give every process 30 s to reach a new collective, the first step's
# included. JAX's persistent compilation cache is turned off here: its entries are keyed per
# process and only process 0 writes them, so with a cache process 0 would start the first step at
# once while the others compile it.
#
# SIGTERM or Ctrl-C to this script is passed to every process as SIGTERM: they agree on one step,
# save it and exit 0. If a process fails, the others are killed (they could only hang in their
# next collective) and the script exits with the failed process's status; 0 only if all succeed.
set -u

if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N [arguments of python -m sslax.train]  (N processes, N >= 1)" >&2
  exit 2
fi
num=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
default_python=python3
[[ -x $repo/.venv/bin/python ]] && default_python=$repo/.venv/bin/python
python=${PYTHON:-$default_python}
devices=${DEVICES_PER_PROCESS:-$(( 8 / num > 0 ? 8 / num : 1 ))}
log_dir=${LOG_DIR:-$(mktemp -d -t sslax_local_XXXX)}
mkdir -p "$log_dir"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0));
print(s.getsockname()[1])') || exit 1
# Our device count replaces any in XLA_FLAGS (the last of two would win silently).
xla_flags="$(echo "${XLA_FLAGS:-}" | sed -E 's/--xla_force_host_platform_device_count=[0-9]+//g')"
xla_flags="--xla_force_host_platform_device_count=$devices $xla_flags"

echo "local_multiprocess: $num processes x $devices CPU devices, coordinator 127.0.0.1:$port," \
  "logs of processes 1..$((num - 1)) in $log_dir"
export SSLAX_COORDINATOR_ADDRESS=127.0.0.1:$port SSLAX_NUM_PROCESSES=$num \
  SSLAX_INIT_TIMEOUT=${SSLAX_INIT_TIMEOUT:-60} \
  SSLAX_HEARTBEAT_TIMEOUT=${SSLAX_HEARTBEAT_TIMEOUT:-20} JAX_PLATFORMS=cpu XLA_FLAGS="$xla_flags" \
  JAX_ENABLE_COMPILATION_CACHE=false
start() {  # Process $1 with the arguments that follow; the background job becomes `timeout`.
  # timeout puts itself and python in a process group of their own: `kill -- -PID` ends both.
  SSLAX_PROCESS_ID=$1 exec timeout --kill-after=60 "${TIMEOUT:-3600}" "$python" -m sslax.train \
    "${@:2}"
}
pids=()
for ((i = 0; i < num; i++)); do
  if ((i == 0)); then
    start 0 "$@" &
  else
    start "$i" "$@" >"$log_dir/process_$i.log" 2>&1 &
  fi
  pids+=($!)
  echo $! >"$log_dir/process_$i.pid"
done

forward() {
  echo "local_multiprocess: passing SIGTERM to every process" >&2
  kill -TERM "${pids[@]}" 2>/dev/null
}
trap forward TERM INT

status=0
running=$num
while ((running > 0)); do
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid"
    rc=$?
    unset "pids[$i]"
    running=$((running - 1))
    ((rc == 0 || status != 0)) && continue
    status=$rc
    ((rc == 124)) && continue  # TIMEOUT: every process got SIGTERM and is saving the same step.
    echo "local_multiprocess: process $i exited with status $rc; killing the others" >&2
    ((i > 0)) && tail -n 20 "$log_dir/process_$i.log" >&2
    for other in "${pids[@]}"; do kill -KILL -- "-$other" 2>/dev/null; done
  done
  sleep 0.2
done
exit "$status"
