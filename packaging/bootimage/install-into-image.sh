#!/usr/bin/env bash
# Installs geni-agent into a node boot image tree and enables it there.
#
#   packaging/bootimage/install-into-image.sh IMAGE_ROOT [--roots DIR] [--config FILE] [--bin FILE]
#
# IMAGE_ROOT     the image's root directory (the tree the boot image is made from)
# --roots DIR    trusted roots to bake in: the *.gid, *.cert and *.pem files of DIR
# --config FILE  the agent.toml to install [default: packaging/agent.toml, and an agent.toml
#                already in the image is kept]
# --bin FILE     the geni-agent binary [default: the static build of packaging/build-static.sh,
#                $CARGO_TARGET_DIR/static/geni-agent or target/static/geni-agent]
#
# Puts /usr/bin/geni-agent, /etc/geni-agent/agent.toml, /etc/geni-agent/trusted_roots/,
# /var/lib/geni-agent and the geni-agent-node unit into the image and enables the unit the way
# `systemctl enable` does (a symlink in multi-user.target.wants), so the node agent starts on
# the node's first boot. Run it again to update an image; it replaces the binary, the unit and the
# roots given. The node's own key, GID and credential are node-specific and do not belong in a
# shared image: provision them at first boot (see packaging/README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
unit=geni-agent-node.service

die() {
    echo "install-into-image: $*" >&2
    exit 1
}

image=
roots=
config=
bin=
while [ $# -gt 0 ]; do
    case "$1" in
        --roots) roots=${2:?--roots needs a directory}; shift 2 ;;
        --config) config=${2:?--config needs a file}; shift 2 ;;
        --bin) bin=${2:?--bin needs a file}; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$image" ] || die "one IMAGE_ROOT only (got $image and $1)"; image=$1; shift ;;
    esac
done
[ -n "$image" ] || die "usage: install-into-image.sh IMAGE_ROOT [--roots DIR] [--config FILE] [--bin FILE]"
[ -d "$image" ] || die "$image is not a directory"
[ "$(cd "$image" && pwd)" != / ] || die "IMAGE_ROOT is /; this script is for image trees, not the running system"
if [ -z "$bin" ]; then
    bin=${CARGO_TARGET_DIR:-$repo/target}/static/geni-agent
    [ -x "$bin" ] || die "no binary at $bin: run packaging/build-static.sh first, or give --bin"
fi
[ -x "$bin" ] || die "--bin $bin is not an executable file"
[ -z "$config" ] || [ -f "$config" ] || die "--config $config is not a file"
[ -z "$roots" ] || [ -d "$roots" ] || die "--roots $roots is not a directory"

install -D -m 0755 "$bin" "$image/usr/bin/geni-agent"
install -D -m 0644 "$here/../systemd/$unit" "$image/usr/lib/systemd/system/$unit"
install -d -m 0755 "$image/etc/geni-agent" "$image/etc/geni-agent/trusted_roots"
install -d -m 0711 "$image/var/lib/geni-agent"
if [ -n "$config" ]; then
    install -m 0640 "$config" "$image/etc/geni-agent/agent.toml"
elif [ ! -e "$image/etc/geni-agent/agent.toml" ]; then
    install -m 0640 "$here/../agent.toml" "$image/etc/geni-agent/agent.toml"
fi
if [ -n "$roots" ]; then
    for f in "$roots"/*.gid "$roots"/*.cert "$roots"/*.pem; do
        [ -f "$f" ] || continue
        install -m 0644 "$f" "$image/etc/geni-agent/trusted_roots/"
    done
fi

# What `systemctl enable` does for WantedBy=multi-user.target, without needing systemctl for the
# image's systemd version.
wants=$image/etc/systemd/system/multi-user.target.wants
mkdir -p "$wants"
ln -sfn "/usr/lib/systemd/system/$unit" "$wants/$unit"

n=$(find "$image/etc/geni-agent/trusted_roots" -maxdepth 1 -type f \
    \( -name '*.gid' -o -name '*.cert' -o -name '*.pem' \) | wc -l)
echo "install-into-image: geni-agent installed into $image and $unit enabled; $n trusted root(s)"
if [ "$n" = 0 ]; then
    echo "install-into-image: warning: no trusted roots in the image; the node refuses to start" \
        "until /etc/geni-agent/trusted_roots holds one (--roots DIR)" >&2
fi
