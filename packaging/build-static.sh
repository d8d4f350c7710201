#!/usr/bin/env bash
# Builds fully static, stripped `geni-agent` and `genicli` for x86_64-unknown-linux-musl and
# checks that they are static. OpenSSL is vendored (built from source by openssl-sys), and any
# bundled C library (SQLite once plc mode brings sqlx's sqlite) compiles with the same musl-gcc,
# so nothing here names them.
#
#   packaging/build-static.sh [--out DIR] [--no-install]
#
# --out DIR       where the stripped binaries go [default: $CARGO_TARGET_DIR/static, or
#                 target/static]
# --no-install    do not try to install musl-tools or the rustup target; fail if they are missing
#
# What it needs, and installs when it can: `musl-gcc` (Debian/Ubuntu: apt-get install musl-tools;
# Fedora: dnf install musl-gcc) and the Rust target (rustup target add x86_64-unknown-linux-musl,
# which downloads from static.rust-lang.org).
set -euo pipefail

TARGET=x86_64-unknown-linux-musl
BINS=(geni-agent genicli)

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
out=$target_dir/static
install=1

die() {
    echo "build-static: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --no-install) install=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# --- musl-gcc: the C compiler for OpenSSL, ring and any bundled C code ---
if ! command -v musl-gcc >/dev/null 2>&1; then
    if [ "$install" = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "build-static: installing musl-tools (for musl-gcc)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends musl-tools >/dev/null; }; then
            die "could not install musl-tools with apt-get (no network to the Debian mirror?); \
install it by hand, or build the glibc binaries with cargo build --release"
        fi
    else
        die "musl-gcc is missing: install musl-tools (Debian/Ubuntu) or musl-gcc (Fedora) as root, \
or run this script as root on Debian/Ubuntu to have it installed"
    fi
fi

# --- the Rust target ---
if ! command -v rustup >/dev/null 2>&1; then
    if ! rustc --print target-libdir --target "$TARGET" >/dev/null 2>&1; then
        die "rustup is not installed and rustc has no $TARGET standard library; install rustup \
(https://rustup.rs) or your distribution's rust-std for $TARGET"
    fi
elif ! (cd "$repo" && rustup target list --installed) | grep -qx "$TARGET"; then
    [ "$install" = 1 ] || die "the Rust target $TARGET is not installed (rustup target add $TARGET)"
    echo "build-static: adding the Rust target $TARGET (downloads from static.rust-lang.org)"
    # Inside the repository, so that it is added to the toolchain rust-toolchain.toml pins.
    if ! (cd "$repo" && rustup target add "$TARGET"); then
        die "could not add the Rust target $TARGET: rustup needs network access to \
static.rust-lang.org (or set RUSTUP_DIST_SERVER to a mirror); the glibc build \
(cargo build --release) needs no extra target"
    fi
fi

# --- build ---
# cc-rs (ring, bundled C libraries) and openssl-src compile C with this. Rust's musl target links
# statically by default with its own self-contained musl CRT and libc, so the host `cc` links.
export CC_x86_64_unknown_linux_musl=musl-gcc
echo "build-static: cargo build --release --locked --target $TARGET -p geni-agent"
(cd "$repo" && cargo build --release --locked --target "$TARGET" -p geni-agent \
    "${BINS[@]/#/--bin=}")

# --- strip, check, report ---
mkdir -p "$out"
status=0
for bin in "${BINS[@]}"; do
    src=$target_dir/$TARGET/release/$bin
    [ -x "$src" ] || die "cargo did not produce $src"
    cp "$src" "$out/$bin.tmp"
    strip "$out/$bin.tmp"
    mv "$out/$bin.tmp" "$out/$bin"
    what=$(file -b "$out/$bin")
    # `ldd` exits non-zero on a static binary and says so; on a dynamic one it lists libraries.
    linked=$(ldd "$out/$bin" 2>&1 || true)
    case "$what" in
        *"statically linked"*|*"static-pie linked"*) ;;
        *) echo "build-static: $bin is NOT static: $what" >&2; status=1 ;;
    esac
    case "$linked" in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) echo "build-static: ldd lists libraries for $bin:" >&2
           echo "$linked" >&2
           status=1 ;;
    esac
    size=$(stat -c %s "$out/$bin")
    awk -v b="$bin" -v s="$size" -v w="$what" \
        'BEGIN { printf "build-static: %-10s %6.2f MB (%d bytes)  %s\n", b, s / 1e6, s, w }'
done
[ "$status" = 0 ] || die "the binaries are not fully static"
echo "build-static: static binaries in $out"
