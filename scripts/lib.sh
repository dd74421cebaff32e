# What the set-up scripts share; sourced, not run.

# Runs a command as root (directly when already root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Whether something listens on 127.0.0.1:$1.
listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Makes the virtualenv $1 (inside the folder $2) if it is missing, installing Debian's
# python3-venv first where needed.
make_venv() {
    local venv=$1 state=$2
    [ -x "$venv/bin/python" ] && return
    python3 -m venv --help >/dev/null 2>&1 || {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    }
    as_root mkdir -p "$state"
    as_root python3 -m venv "$venv"
}
