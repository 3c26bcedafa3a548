#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs
# `cargo test --locked` (extra arguments are passed on) and exits with its code.
#
# The SCIM tests run against scim2-server, a Python SCIM 2.0 server, so it is
# installed here, pinned by tests/scim/constraints.txt, into a virtualenv under
# target/. The install is redone only when the pins change (a stamp file holds
# their hash), so a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/scim-venv
requirements=tests/scim/requirements.txt
constraints=tests/scim/constraints.txt
stamp=$venv/.installed-pins

# Runs a command as root: directly when we are root (CI, containers), else with sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: \`$*\` needs root, and sudo is not installed" >&2
        exit 1
    fi
}

check_python() {
    if ! command -v python3 >/dev/null 2>&1; then
        echo "error: python3 is needed to run the SCIM tests (scim2-server); install Python 3.11 or newer" >&2
        exit 1
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: scim2-server needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)" >&2
        exit 1
    fi
}

# Debian ships venv's pip bootstrap (ensurepip and its wheels) apart, in
# python3-venv: without it `python3 -m venv` fails half way. So try, and on
# failure install that package and try again.
create_venv() {
    local failure
    rm -rf "$venv"
    if failure=$(python3 -m venv "$venv" 2>&1); then
        return
    fi
    rm -rf "$venv"
    if ! command -v apt-get >/dev/null 2>&1; then
        printf '%s\n' "$failure" >&2
        echo "error: \`python3 -m venv\` failed; install your distribution's Python venv package" >&2
        exit 1
    fi
    echo "== installing python3-venv (\`python3 -m venv\` needs it)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
}

pins_hash() {
    cat "$requirements" "$constraints" | sha256sum | cut -d' ' -f1
}

install_scim_server() {
    check_python
    echo "== installing scim2-server into $venv (pinned by $constraints)"
    # A half-built virtualenv is never reused: create_venv starts from nothing.
    create_venv
    "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --requirement "$requirements" --constraint "$constraints"
    "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
    "$venv/bin/scim2-server" --help >/dev/null
    "$venv/bin/check-jsonschema" --version >/dev/null
    # Written last, so an interrupted install is redone next time.
    pins_hash >"$stamp"
}

mkdir -p target
# Two runs in one checkout must not build the same virtualenv at once.
exec 9>target/.scim-venv.lock
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$(pins_hash)" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    install_scim_server
fi
exec 9>&-

# The PostgreSQL tests start throw-away clusters with Debian's postgresql-15
# binaries (as the `postgres` user, since initdb refuses root).
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: the PostgreSQL tests need /usr/lib/postgresql/15/bin (Debian's postgresql-15)" >&2
        exit 1
    fi
    echo "== installing postgresql-15 (the state-backend tests run a real server)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null \
        || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# The prompt tests type at apply in a terminal with util-linux `script`
# (Debian's bsdutils, essential there, but not in every image).
if ! command -v script >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: the prompt tests need util-linux's script(1)" >&2
        exit 1
    fi
    echo "== installing bsdutils (script(1), for the prompt tests)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bsdutils >/dev/null
fi

SCIM2_SERVER_BIN="$PWD/$venv/bin/scim2-server"
CHECK_JSONSCHEMA_BIN="$PWD/$venv/bin/check-jsonschema"
export SCIM2_SERVER_BIN CHECK_JSONSCHEMA_BIN

echo "== cargo test --locked $*"
exec cargo test --locked "$@"
