#!/usr/bin/env bash
# Pretrains with sslax on a Cloud TPU VM or pod slice, from this checkout:
#   1. creates the TPU VM, or reuses it (READY: as is; STOPPED: started; PREEMPTED: recreated);
#   2. copies the code to every worker (a `git archive` of HEAD, or a clone of --repo);
#   3. installs it into ~/sslax-venv on every worker (pip: the package and jax[tpu]) and mounts
#      the workdir's GCS bucket with Cloud Storage FUSE;
#   4. runs `python -m sslax.train --workdir=... ARGS` on all workers at once; JAX finds the
#      other workers itself (sslax.distributed, JAX's Cloud TPU detection).
# Rerunning the same command resumes the run from its last checkpoint in the bucket.
# --dry-run prints every command instead of running it. See launch/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_pod.sh --name=NAME --zone=ZONE --accelerator=TYPE --workdir=gs://BUCKET/PATH
                         [options] -- --config=configs/FILE.py [--config.KEY=VALUE ...]

required:
  --name=NAME             TPU VM name (created if it does not exist, else reused)
  --zone=ZONE             e.g. us-west4-a
  --accelerator=TYPE      e.g. v5litepod-16 (4 workers of 4 chips), v4-32, v5p-16, v6e-8
  --workdir=gs://B/PATH   the run's directory in a GCS bucket, mounted on every worker at
                          ~/gcs/B (Cloud Storage FUSE); checkpoints and logs go there
options:
  --project=PROJECT       gcloud project (default: gcloud's configured one)
  --runtime-version=V     TPU software version (default from the accelerator: v4
                          tpu-ubuntu2204-base, v5litepod v2-alpha-tpuv5-lite, v5p
                          v2-alpha-tpuv5, v6e v2-alpha-tpuv6e)
  --spot | --preemptible  create a Spot / preemptible TPU VM (cheaper; may be preempted)
  --repo=URL [--ref=REF]  clone URL (at REF) on the workers instead of copying this checkout
  --module=MODULE         the module to run (default sslax.train)
  --python=PYTHON         interpreter for the venv (default python3.11; installed if missing)
  --skip-install          reuse ~/sslax-venv as it is (code is still copied: editable install)
  --detach                run in the background (nohup); logs in ~/sslax-run.log on each worker
  --dry-run               print the commands instead of running them
  -h, --help              this message
Everything after -- goes to the module, e.g. -- --config=configs/simclr_mnist.py
--config.batch_size=1024.
EOF
}

die() {
  echo "tpu_pod.sh: $*" >&2
  exit 2
}

# One shell word: as is when it is plain, else single-quoted; printed commands can be pasted.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_all() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(quote "$word")"
  done
  printf '%s' "$out"
}

run() {
  if [[ $dry_run == 1 ]]; then
    quote_all "$@"
    echo
  else
    "$@"
  fi
}

default_runtime() {
  case $1 in
    v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) die "no default --runtime-version for --accelerator=$1; pass --runtime-version=..." ;;
  esac
}

name="" zone="" accelerator="" workdir="" project="" runtime="" capacity="" repo="" ref=""
module=sslax.train python=python3.11 skip_install=0 detach=0 dry_run=0
args=()
while [[ $# -gt 0 ]]; do
  flag=$1
  shift
  case $flag in
    --) args=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    --spot | --preemptible) capacity=$flag; continue ;;
    --skip-install) skip_install=1; continue ;;
    --detach) detach=1; continue ;;
    --dry-run) dry_run=1; continue ;;
    --*=*) value=${flag#*=}; flag=${flag%%=*} ;;
    --*)
      [[ $# -gt 0 ]] || die "$flag needs a value (see --help)"
      value=$1
      shift
      ;;
    *) die "unexpected argument '$flag': flags for sslax go after -- (see --help)" ;;
  esac
  case $flag in
    --name) name=$value ;;
    --zone) zone=$value ;;
    --accelerator) accelerator=$value ;;
    --workdir) workdir=$value ;;
    --project) project=$value ;;
    --runtime-version) runtime=$value ;;
    --repo) repo=$value ;;
    --ref) ref=$value ;;
    --module) module=$value ;;
    --python) python=$value ;;
    *) die "unknown flag $flag (see --help)" ;;
  esac
done

for required in name zone accelerator workdir; do
  [[ -n ${!required} ]] || die "--$required is required (see --help)"
done
[[ $workdir =~ ^gs://([^/]+)(/.*)?$ ]] ||
  die "--workdir must be a GCS path gs://BUCKET/PATH (shared by every worker), got '$workdir'"
bucket=${BASH_REMATCH[1]}
run_path=${BASH_REMATCH[2]#/}
[[ -n $run_path ]] ||
  die "--workdir=gs://$bucket needs a path inside the bucket, e.g. gs://$bucket/runs/x"
[[ -z $ref || -n $repo ]] || die "--ref needs --repo"
[[ " ${args[*]} " != *" --workdir="* ]] ||
  die "give --workdir=gs://... before --, not after: the script passes the mounted path on"
if [[ $module == sslax.train && " ${args[*]} " != *" --config="* ]]; then
  die "sslax.train needs --config=configs/FILE.py after -- (see --help)"
fi
runtime=${runtime:-$(default_runtime "$accelerator")}

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[[ -z $project ]] || where+=(--project="$project")
ssh_all=("${gcloud_tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command)

# 1. Create or reuse the TPU VM.
create=("${gcloud_tpu[@]}" create "$name" "${where[@]}" --accelerator-type="$accelerator"
        --version="$runtime" ${capacity:+"$capacity"})
describe=("${gcloud_tpu[@]}" describe "$name" "${where[@]}" --format='value(state)')
if [[ $dry_run == 1 ]]; then
  run "${describe[@]}"
  echo "# not found: create it; READY: reuse it; STOPPED: start it; PREEMPTED: delete, create"
  run "${create[@]}"
else
  state=$("${describe[@]}" 2>/dev/null) || state=""
  case $state in
    "") echo "creating TPU VM $name ($accelerator, $runtime${capacity:+, ${capacity#--}})"
        run "${create[@]}" ;;
    READY) echo "reusing TPU VM $name (READY)" ;;
    STOPPED) run "${gcloud_tpu[@]}" start "$name" "${where[@]}" ;;
    PREEMPTED | TERMINATED)
      echo "TPU VM $name is $state: deleting and creating it again (the run is in $workdir)"
      run "${gcloud_tpu[@]}" delete "$name" "${where[@]}" --quiet
      run "${create[@]}" ;;
    *) die "TPU VM $name is $state; rerun when it is READY" ;;
  esac
fi

# 2. Copy the code: this checkout's HEAD as a tarball, or a clone of --repo.
if [[ -n $repo ]]; then
  fetch="rm -rf ~/sslax; git clone -q $(quote "$repo") ~/sslax"
  [[ -z $ref ]] || fetch+="; git -C ~/sslax checkout -q $(quote "$ref")"
else
  root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
  commit=$(git -C "$root" rev-parse --short HEAD)
  [[ -z $(git -C "$root" status --porcelain --untracked-files=no) ]] ||
    echo "tpu_pod.sh: warning: uncommitted changes are not copied (git archive of HEAD $commit)" >&2
  tarball=${TMPDIR:-/tmp}/sslax-$commit.tar.gz
  run git -C "$root" archive --format=tar.gz -o "$tarball" HEAD
  run "${gcloud_tpu[@]}" scp "$tarball" "$name:sslax.tar.gz" "${where[@]}" --worker=all
  fetch="rm -rf ~/sslax; mkdir -p ~/sslax; tar -xzf ~/sslax.tar.gz -C ~/sslax"
fi

# 3. Install (a venv with the package and JAX for TPU) and mount the bucket, on every worker.
# Steps are joined by "; " under `set -e`: the first that fails stops the worker's setup.
install="command -v $(quote "$python") >/dev/null || { sudo apt-get update -qq &&"
install+=" sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(quote "$python")"
install+=" $(quote "$python-venv"); }"
install+="; [ -x ~/sslax-venv/bin/python ] || $(quote "$python") -m venv ~/sslax-venv"
install+="; ~/sslax-venv/bin/pip install -q -U pip"
install+="; ~/sslax-venv/bin/pip install -q -e ~/sslax 'jax[tpu]>=0.10.2,<0.11'"
mount_dir="\$HOME/gcs/$bucket"
# No metadata caching: every worker sees at once what the others wrote. Orbax renames each
# finished checkpoint directory: atomic on a hierarchical-namespace bucket, a copy bounded by
# --rename-dir-limit on a flat one.
mount="command -v gcsfuse >/dev/null || { echo \"gcsfuse (Cloud Storage FUSE >= 2.0) is"
mount+=" missing on \$(hostname)\" >&2; exit 1; }"
mount+="; mkdir -p $mount_dir; mountpoint -q $mount_dir || gcsfuse --implicit-dirs"
mount+=" --rename-dir-limit=1000000 --metadata-cache-ttl-secs=0"
mount+=" --metadata-cache-negative-ttl-secs=0 $(quote "$bucket") $mount_dir"
mount+="; mkdir -p $mount_dir/$(quote "$run_path")"
setup="set -e; $fetch"
[[ $skip_install == 1 ]] || setup+="; $install"
run "${ssh_all[@]}" "$setup; $mount"

# 4. Run on all workers; process 0 prints the progress, every process writes its checkpoint shards.
train="cd ~/sslax && ~/sslax-venv/bin/python -m $(quote "$module")"
train+=" --workdir=$mount_dir/$(quote "$run_path") $(quote_all "${args[@]}")"
if [[ $detach == 1 ]]; then
  train="setsid nohup bash -c $(quote "$train") > ~/sslax-run.log 2>&1 < /dev/null &"
fi
run "${ssh_all[@]}" "$train"
if [[ $detach == 1 ]]; then
  echo "started; progress: $(quote_all "${gcloud_tpu[@]}" ssh "$name" "${where[@]}" --worker=0 \
    --command='tail -f ~/sslax-run.log')"
fi
