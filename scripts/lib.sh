# Shared set-up steps of hoard's scripts. Every step is idempotent: it checks before it installs.
# shellcheck shell=bash

# Each step's line says how long the script has run, so a slow step shows in CI's log.
log() { printf '==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

# The features every test build uses: the same in every command, so cargo's feature unification
# gives the same dependency builds and nothing is built twice.
HOARD_TEST_FEATURES="--features hoard-cli/rdma,hoard-tests/rdma,hoard-bench/rdma"

# build_for_tests: the binaries the tests start (`hoard`, `hoard-test-cluster`) and the test
# targets, in one resolve. `--tests` brings the dev-dependencies in, as `cargo test` does: a build
# without them, or of one package, unifies features differently and builds every dependency a
# second time (ten minutes on CI's two cores).
build_for_tests() {
  cargo build --locked --workspace --bins --tests $HOARD_TEST_FEATURES
}

# apt_install PKG...: install the Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# need_cargo: the Rust toolchain must be there (this machine kind ships it through rustup).
need_cargo() {
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
}

# ensure_garage: the S3-compatible server the tests run against (Garage 2.5.0, ~7-10 min to build once).
ensure_garage() {
  if command -v garage >/dev/null && garage --version 2>/dev/null | grep -q '2\.5\.0'; then return 0; fi
  log "installing garage 2.5.0 (cargo install, several minutes, once)"
  cargo install garage --version 2.5.0 --locked --quiet
}

# build_nodelay_shim: LD_PRELOAD shim that sets TCP_NODELAY on Garage's accepted sockets
# (Garage 2.5.0 leaves Nagle on, which stalls small GETs ~44 ms).
build_nodelay_shim() {
  local src=scripts/tcp_nodelay_shim.c out=scripts/tcp_nodelay_shim.so
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
    gcc -shared -fPIC -O2 -o "$out" "$src" -ldl
  fi
}

# python_env: a virtual environment with what the Python package's build, tests and benchmark
# need (maturin, pytest, numpy, fsspec, boto3, and PyTorch from PyPI: several GiB, installed once
# and kept in ~/.cache/hoard/pyenv, or $HOARD_PYENV), and the S3 clients the gateway's tests use
# (the AWS CLI, s3torchconnector). Activates it, and points PyO3 at its interpreter so that cargo
# and maturin build against the same Python.
python_env() {
  local venv="${HOARD_PYENV:-$HOME/.cache/hoard/pyenv}"
  local wanted=(maturin pytest numpy fsspec boto3 torch awscli s3torchconnector)
  if [ ! -x "$venv/bin/python" ]; then
    log "creating the Python virtual environment $venv"
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
  if ! { command -v maturin && command -v aws && python -c 'import pytest, numpy, fsspec, boto3, torch, s3torchconnector'; } >/dev/null 2>&1; then
    log "installing Python packages: ${wanted[*]} (PyTorch is large: minutes, once)"
    python -m pip install -q --upgrade pip
    python -m pip install -q "${wanted[@]}"
  fi
  export PYO3_PYTHON="$venv/bin/python"
}
