#!/usr/bin/env bash
# Prepare everything the benchmark needs, idempotently, so `python bench/run.py` works from a
# fresh clone: the load generator, the native floor and openssl from Debian, the peer
# servers in a private virtualenv (bench/.venv), bench/wsload (cargo: the WebSocket,
# full-TLS-handshake and HTTP/3 load generator) and ruvicorn built from this checkout in
# release mode.
#
# Each step is skipped when it is already done; ruvicorn is rebuilt only when its sources
# changed (a hash of the checkout outside bench/, tests/ and examples/ is kept in the venv);
# wsload likewise when bench/wsload or native/core (its HTTP/3 frames and QPACK) changed.
#
# Environment: PYTHON (interpreter for the venv, default python3), BENCH_VENV (the venv,
# default bench/.venv; one per interpreter compares them), BENCH_SKIP_APT=1,
# BENCH_SKIP_RUVICORN=1, BENCH_REBUILD=1 (rebuild ruvicorn even if unchanged),
# CARGO_TARGET_DIR (default bench/.venv/cargo-target, kept between runs).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$(realpath -m "${BENCH_VENV:-$BENCH_DIR/.venv}")"
PYTHON="${PYTHON:-python3}"

say() { printf 'bench/setup: %s\n' "$*" >&2; }

# --- Debian packages: wrk, h2load (load generators), nginx (native floor), openssl ---
install_debian_packages() {
    local missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    # mints the TLS workloads' certificates for each run (bench/runner/tls.py)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # the HTTP/2 load generator (the h2-* workloads)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${BENCH_SKIP_APT:-0}" = 1 ]; then
        say "missing ${missing[*]} and BENCH_SKIP_APT=1: those rows will fail"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        say "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (needs root)"
        return 0
    fi
    say "installing ${missing[*]} with apt-get"
    # Keep the package scripts from starting a system nginx on port 80: the benchmark starts
    # its own nginx with its own config. Only done when no policy exists already.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || say "apt-get install ${missing[*]} failed: those rows will fail"
    [ $made_policy = 1 ] && rm -f "$policy"
    return 0
}

# --- the peers' virtualenv -----------------------------------------------------------------
make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local want have
    want="$(sha256sum "$BENCH_DIR/requirements.txt" | cut -d' ' -f1)"
    have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
    if [ "$want" != "$have" ]; then
        say "installing the peer servers into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$BENCH_DIR/requirements.txt"
        echo "$want" >"$VENV/.requirements.sha256"
    fi
}

# --- the WebSocket load generator ------------------------------------------------------------
install_wsload() {
    # A crate of its own (not in the repository's workspace), built in release mode and
    # copied to bench/.venv/bin/wsload; its cargo cache is bench/.venv/wsload-target. It
    # drives the websocket, tls-close and h3-* workloads (rustls with ring: a C compiler
    # suffices). It writes HTTP/3 with native/core, a path dependency: its sources count.
    local src="$BENCH_DIR/wsload" stamp="$VENV/.wsload.sha256" want
    want="$(cd "$REPO" && find bench/wsload/Cargo.toml bench/wsload/Cargo.lock bench/wsload/src \
        native/core/Cargo.toml native/core/src -type f -print0 | sort -z \
        | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    if [ "$want" = "$(cat "$stamp" 2>/dev/null || true)" ] && [ -x "$VENV/bin/wsload" ]; then
        return 0
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        say "cargo is missing: no wsload, so the websocket, tls-close and h3 rows will fail"
        return 0
    fi
    say "building bench/wsload (release); the log is in $VENV/wsload-build.log"
    if nice -n 10 cargo build --release --locked --manifest-path "$src/Cargo.toml" \
        --target-dir "$VENV/wsload-target" >"$VENV/wsload-build.log" 2>&1; then
        install -m 755 "$VENV/wsload-target/release/wsload" "$VENV/bin/wsload"
        echo "$want" >"$stamp"
    else
        rm -f "$VENV/bin/wsload" "$stamp"
        say "wsload did not build; the websocket, tls-close and h3 rows will fail." \
            "From $VENV/wsload-build.log:"
        tail -n 8 "$VENV/wsload-build.log" | sed 's/^/    /' >&2
    fi
}

# --- ruvicorn from this checkout -------------------------------------------------------------
source_hash() {
    # Every input of the wheel: the checkout (tracked and untracked, not ignored) minus the
    # parts no build reads. Without git (an unpacked archive), the known inputs.
    (
        cd "$REPO"
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            git ls-files -z -co --exclude-standard -- . ':!bench' ':!tests' ':!examples' \
                ':!.ci' ':!.dev' ':!.github'
        else
            find native ruvicorn Cargo.toml Cargo.lock pyproject.toml README.md LICENSE \
                -type f -not -path '*/__pycache__/*' -print0 2>/dev/null
        fi | sort -z | while IFS= read -r -d '' f; do
            [ -f "$f" ] && sha256sum "$f"
        done
    ) | sha256sum | cut -d' ' -f1
}

install_ruvicorn() {
    [ "${BENCH_SKIP_RUVICORN:-0}" = 1 ] && return 0
    local stamp="$VENV/.ruvicorn.sha256" failed="$VENV/.ruvicorn-failed.sha256" want have
    want="$(source_hash)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [ "${BENCH_REBUILD:-0}" = 1 ]; then
        have="" && rm -f "$failed"
    fi
    if [ "$want" = "$have" ] && "$VENV/bin/python" -c 'import ruvicorn' 2>/dev/null; then
        return 0
    fi
    if [ "$want" = "$(cat "$failed" 2>/dev/null || true)" ]; then
        say "ruvicorn did not build from these sources (see $VENV/ruvicorn-build.log);" \
            "its rows will fail. Rebuilds when the sources change."
        return 0
    fi
    say "building ruvicorn (release) into $VENV; the log is in $VENV/ruvicorn-build.log"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$VENV/cargo-target}"
    # Build the wheel, then replace only ruvicorn itself; its dependencies are installed if
    # missing but never upgraded, so the peers' shared packages stay as pinned.
    local wheels="$VENV/wheels"
    rm -rf "$wheels"
    if nice -n 10 "$VENV/bin/python" -m pip wheel --disable-pip-version-check --no-deps \
        --no-build-isolation -w "$wheels" "$REPO" >"$VENV/ruvicorn-build.log" 2>&1 \
        && "$VENV/bin/python" -m pip install --disable-pip-version-check --force-reinstall \
            --no-deps "$wheels"/ruvicorn-*.whl >>"$VENV/ruvicorn-build.log" 2>&1 \
        && "$VENV/bin/python" -m pip install --disable-pip-version-check \
            "$wheels"/ruvicorn-*.whl >>"$VENV/ruvicorn-build.log" 2>&1; then
        echo "$want" >"$stamp"
        rm -f "$failed"
        say "ruvicorn installed"
    else
        # Never benchmark a stale build: remove it so its rows show as failed.
        "$VENV/bin/python" -m pip uninstall -q -y ruvicorn >/dev/null 2>&1 || true
        rm -f "$stamp"
        echo "$want" >"$failed"
        say "ruvicorn did not build; its rows will fail. From $VENV/ruvicorn-build.log:"
        { grep -E '^error|Caused by|^\s*error(\[|:)' "$VENV/ruvicorn-build.log" | head -n 8 \
            || tail -n 8 "$VENV/ruvicorn-build.log"; } | sed 's/^/    /' >&2
    fi
}

install_debian_packages
make_venv
install_wsload
install_ruvicorn
