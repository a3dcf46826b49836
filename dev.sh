#!/usr/bin/env bash
# dev.sh — ringcast's one entry point (developers and CI alike).
#
#   ./dev.sh run [ringcast flags]   set up, build ReleaseFast, run the server (--demo --echo on :8080)
#   ./dev.sh test [pytest args]     set up, build ReleaseSafe (UB traps on), run the e2e suite
#                                   (tests/e2e), which itself runs zig build test,
#                                   tests/sanitize.sh and tests/fuzz/run.sh
#   ./dev.sh build [zig build args] set up, zig build -Doptimize=ReleaseFast
#   ./dev.sh zig ARGS...            set up, run the project's Zig (e.g. ./dev.sh zig build test)
#   ./dev.sh sanitize [unit|server] tests/sanitize.sh
#   ./dev.sh fuzz [SECONDS]         tests/fuzz/run.sh
#   ./dev.sh setup                  only the set-up step
#
# Set-up is idempotent and silent when nothing is missing: Debian packages
# (apt), the Python venv .venv and its pinned requirements (tests/requirements.txt,
# re-installed only when its sha256 differs from .venv/.req-stamp). Zig comes
# from PyPI (ziglang) and always runs as `.venv/bin/python -m ziglang`; a
# `.venv/bin/zig` shim is provided, and .venv/bin is put first on PATH (and
# $ZIG set) for everything dev.sh starts. CI=true: no prompts, no colour.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

APT_PACKAGES=(
    build-essential pkg-config
    liburing-dev libhiredis-dev libwolfssl-dev libdeflate-dev libisal-dev libcjson-dev libjsmn-dev zlib1g-dev
    redis-server
    clang llvm libclang-rt-14-dev valgrind
    python3 python3-venv
    nodejs node-ws chromium
    openssl curl ca-certificates
)

VENV="$ROOT/.venv"
PY="$VENV/bin/python"
REQ="$ROOT/tests/requirements.txt"
STAMP="$VENV/.req-stamp"

CI_MODE=0
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
    CI_MODE=1
    export NO_COLOR=1
fi
ZIG_BUILD_FLAGS=()
PYTEST_FLAGS=()
if ((CI_MODE)); then
    ZIG_BUILD_FLAGS+=(--color off)
    PYTEST_FLAGS+=(--color=no)
fi

die() {
    echo "dev.sh: $*" >&2
    exit 1
}

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if ((CI_MODE)) || [[ ! -t 0 ]]; then sudo -n "$@"; else sudo "$@"; fi
    else
        die "not root and no sudo: cannot run: $*"
    fi
}

# Prints the packages of APT_PACKAGES that are not fully installed.
missing_apt_packages() {
    local -A ok=()
    local name st
    while read -r name st; do
        [[ "$st" == ii ]] && ok["$name"]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)
    for name in "${APT_PACKAGES[@]}"; do
        [[ -n "${ok[$name]:-}" ]] || echo "$name"
    done
}

ensure_apt() {
    local missing
    mapfile -t missing < <(missing_apt_packages)
    ((${#missing[@]} == 0)) && return 0
    echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    mapfile -t missing < <(missing_apt_packages)
    ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
}

ensure_venv() {
    if [[ ! -x "$PY" ]]; then
        echo "dev.sh: creating .venv" >&2
        /usr/bin/python3 -m venv "$VENV"
    fi
    local want have=""
    want="$(sha256sum "$REQ" | cut -d' ' -f1)"
    [[ -f "$STAMP" ]] && have="$(<"$STAMP")"
    if [[ "$want" != "$have" ]]; then
        echo "dev.sh: installing Python requirements (tests/requirements.txt)" >&2
        "$PY" -m pip install -q --disable-pip-version-check --no-input -r "$REQ"
        echo "$want" >"$STAMP"
    fi
    # `zig` shim so tools started by dev.sh (pytest cases, scripts) can say `zig`.
    if [[ ! -x "$VENV/bin/zig" ]]; then
        # shellcheck disable=SC2016 # expanded by the shim, not here
        printf '#!/bin/sh\nexec "$(dirname "$0")/python" -m ziglang "$@"\n' >"$VENV/bin/zig"
        chmod +x "$VENV/bin/zig"
    fi
}

setup() {
    ensure_apt
    ensure_venv
    export PATH="$VENV/bin:$PATH"
    export ZIG="$VENV/bin/zig"
}

zig() {
    "$PY" -m ziglang "$@"
}

build_release() {
    zig build -Doptimize=ReleaseFast ${ZIG_BUILD_FLAGS[@]+"${ZIG_BUILD_FLAGS[@]}"} "$@"
}

# Soft (and if allowed hard) open-files limit: the hard limit, >= 65536 if we may.
raise_nofile() {
    local hard
    hard="$(ulimit -Hn)"
    if [[ "$hard" != unlimited ]] && ((hard < 65536)); then
        ulimit -Hn 65536 2>/dev/null && hard=65536
    fi
    if [[ "$hard" == unlimited ]]; then
        ulimit -Sn "$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)" 2>/dev/null || true
    else
        ulimit -Sn "$hard" 2>/dev/null || true
    fi
}

usage() {
    sed -n '2,/^#   .\/dev.sh setup/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

cmd="${1:-help}"
[[ $# -gt 0 ]] && shift

case "$cmd" in
run)
    setup
    build_release
    exec "$ROOT/zig-out/bin/ringcast" --listen 0.0.0.0:8080 --demo --echo "$@"
    ;;
build)
    setup
    build_release "$@"
    ;;
test)
    setup
    # The e2e fixtures run zig-out/bin/ringcast: ReleaseSafe keeps Zig's
    # trapping UBSan in the C code, so undefined behaviour fails a test.
    zig build -Doptimize=ReleaseSafe ${ZIG_BUILD_FLAGS[@]+"${ZIG_BUILD_FLAGS[@]}"}
    raise_nofile
    # Default to the e2e suite unless the caller named tests/paths themselves.
    paths=(tests/e2e)
    for a in "$@"; do
        if [[ "$a" != -* && ("$a" == *::* || -e "${a%%::*}") ]]; then
            paths=()
            break
        fi
    done
    set +e
    "$PY" -m pytest ${paths[@]+"${paths[@]}"} -q ${PYTEST_FLAGS[@]+"${PYTEST_FLAGS[@]}"} "$@"
    status=$?
    set -e
    exit "$status"
    ;;
zig)
    setup
    exec "$PY" -m ziglang "$@"
    ;;
sanitize)
    setup
    exec bash "$ROOT/tests/sanitize.sh" "$@"
    ;;
fuzz)
    setup
    exec bash "$ROOT/tests/fuzz/run.sh" "$@"
    ;;
setup)
    setup
    ;;
help | -h | --help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
