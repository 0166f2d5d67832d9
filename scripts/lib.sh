# Shared set-up steps of hoard's scripts. Every step is idempotent: it checks before it installs.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }

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
