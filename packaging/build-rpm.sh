#!/usr/bin/env bash
# Builds the geni-agent RPM from rpm.spec with a private rpmbuild tree.
#
#   packaging/build-rpm.sh [--bin-dir DIR] [--roots DIR] [--release N] [--out DIR] [-- RPMBUILD-ARGS]
#
# --bin-dir DIR  take geni-agent and genicli from DIR instead of building them with
#                packaging/build-static.sh (static musl, stripped)
# --roots DIR    ship the *.gid, *.cert and *.pem files of DIR in /etc/geni-agent/trusted_roots
#                (as config files, kept on upgrade if changed on the node)
# --release N    the RPM release [default: 1]
# --out DIR      where the .rpm goes [default: $CARGO_TARGET_DIR/rpm, or target/rpm]
# Arguments after -- go to rpmbuild, e.g. -- --define '_binary_payload w1.gzdio'.
#
# Needs rpmbuild: `dnf install rpm-build`, or on Debian/Ubuntu `apt-get install rpm`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin_dir=
roots=
release=1
out=$target_dir/rpm

die() {
    echo "build-rpm: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
        --roots) roots=${2:?--roots needs a directory}; shift 2 ;;
        --release) release=${2:?--release needs a number}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        --) shift; break ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

command -v rpmbuild >/dev/null 2>&1 ||
    die "rpmbuild is missing: install rpm-build (Fedora/RHEL) or rpm (Debian/Ubuntu)"
[ -z "$roots" ] || [ -d "$roots" ] || die "--roots $roots is not a directory"

if [ -z "$bin_dir" ]; then
    bin_dir=$target_dir/static
    "$here/build-static.sh" --out "$bin_dir"
fi
for bin in geni-agent genicli; do
    [ -x "$bin_dir/$bin" ] || die "$bin_dir/$bin is missing or not executable"
done
version=$("$bin_dir/geni-agent" --version | awk '{ print $2 }')
[ -n "$version" ] || die "cannot tell the version of $bin_dir/geni-agent"

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES" "$top/BUILD" "$top/RPMS" "$top/SPECS" "$top/SRPMS" "$top/BUILDROOT"
cp "$bin_dir/geni-agent" "$bin_dir/genicli" "$top/SOURCES/"
cp "$here/systemd/geni-agent-node.service" "$here/systemd/geni-agent-plc.service" \
    "$here/agent.toml" "$here/README.md" "$top/SOURCES/"
cp "$repo/trusted_roots.example/README.md" "$top/SOURCES/trusted_roots.md"
if [ -n "$roots" ]; then
    mkdir "$top/SOURCES/trusted_roots"
    found=0
    for f in "$roots"/*.gid "$roots"/*.cert "$roots"/*.pem; do
        [ -f "$f" ] || continue
        cp "$f" "$top/SOURCES/trusted_roots/"
        found=$((found + 1))
    done
    [ "$found" -gt 0 ] || die "--roots $roots holds no *.gid, *.cert or *.pem file"
fi

rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "geni_version $version" \
    --define "geni_release $release" \
    "$@" "$repo/rpm.spec"

mkdir -p "$out"
rpm=$(find "$top/RPMS" -name '*.rpm' | head -n 1)
[ -n "$rpm" ] || die "rpmbuild produced no package"
cp "$rpm" "$out/"
echo "$out/$(basename "$rpm")"
