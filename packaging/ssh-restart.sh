#!/usr/bin/env bash
# Restarts geni-agent on nodes over SSH and reports each host.
#
#   packaging/ssh-restart.sh [options] HOST...
#
# On each host: `systemctl restart geni-agent-node` when systemd runs there (then checks that
# the unit is active), otherwise `geni-agent node --restart` (stops the node named by its pid
# file and starts it again detached). Hosts are done --parallel at a time; each gets one line,
# "HOST: ok (how)" or "HOST: FAILED (exit N): what it said". Exits 0 only if every host succeeded.
#
# Options:
#   --via auto|systemd|direct  how to restart [default: auto, decided on each host]
#   --unit NAME                the systemd unit [default: geni-agent-node.service]
#   --command CMD              the command without systemd [default: geni-agent node --restart];
#                              give it the flags the node runs with if they are not the defaults
#   --parallel N               hosts at once [default: 1]
#   --timeout SECONDS          ssh ConnectTimeout [default: 10]
#
# SSH is `$SSH` (default `ssh`) with BatchMode on, so a host that would ask for a password fails
# instead of hanging; put users, keys and jump hosts in ~/.ssh/config or `$SSH_OPTS`.
set -euo pipefail

via=auto
unit=geni-agent-node.service
command="geni-agent node --restart"
parallel=1
timeout=10
ssh=${SSH:-ssh}

usage() {
    sed -n '2,22p' "$0"
}
die() {
    echo "ssh-restart: $*" >&2
    exit 2
}

hosts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --via) via=${2:?--via needs auto, systemd or direct}; shift 2 ;;
        --unit) unit=${2:?--unit needs a name}; shift 2 ;;
        --command) command=${2:?--command needs a command}; shift 2 ;;
        --parallel) parallel=${2:?--parallel needs a number}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; hosts+=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) hosts+=("$1"); shift ;;
    esac
done
[ ${#hosts[@]} -gt 0 ] || die "no hosts given (see --help)"
case "$via" in auto|systemd|direct) ;; *) die "--via must be auto, systemd or direct" ;; esac
case "$parallel" in ''|*[!0-9]*|0) die "--parallel must be a positive number" ;; esac
case "$timeout" in ''|*[!0-9]*) die "--timeout must be a number of seconds" ;; esac

# The remote side is POSIX sh. It prints "via systemd" or "via pid file" last, for the report.
systemd_restart="systemctl restart $unit && systemctl is-active --quiet $unit && echo 'via systemd'"
direct_restart="$command && echo 'via pid file'"
case "$via" in
    systemd) remote=$systemd_restart ;;
    direct) remote=$direct_restart ;;
    auto) remote="if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then \
$systemd_restart; else $direct_restart; fi" ;;
esac

# Whatever the login shell on the host is, run the script with sh.
quoted=$(printf '%s' "$remote" | sed "s/'/'\\\\''/g")
remote="sh -c '$quoted'"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One host: its output and exit status go to files named by its index, so that parallel runs
# print in the order the hosts were given.
restart_one() {
    local i=$1 host=$2 rc=0
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options on purpose
    $ssh -o BatchMode=yes -o ConnectTimeout="$timeout" ${SSH_OPTS:-} "$host" "$remote" \
        </dev/null >"$work/$i.out" 2>&1 || rc=$?
    echo "$rc" >"$work/$i.rc"
}

running=0
for i in "${!hosts[@]}"; do
    restart_one "$i" "${hosts[$i]}" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=0
for i in "${!hosts[@]}"; do
    host=${hosts[$i]}
    rc=$(cat "$work/$i.rc" 2>/dev/null || echo 255)
    said=$(tr -s '\n' ' ' <"$work/$i.out" | sed 's/ *$//' | tail -c 400)
    if [ "$rc" = 0 ]; then
        how=$(grep -o 'via [a-z ]*' "$work/$i.out" | tail -n 1 || true)
        detail=$(grep -o 'started pid [0-9]*' "$work/$i.out" | tail -n 1 || true)
        echo "$host: ok (${how:-restarted})${detail:+, $detail}"
    else
        failed=$((failed + 1))
        [ "$rc" = 255 ] && said="ssh failed: $said"
        echo "$host: FAILED (exit $rc): ${said:-no output}"
    fi
done
echo "ssh-restart: $((${#hosts[@]} - failed)) ok, $failed failed"
[ "$failed" = 0 ]
