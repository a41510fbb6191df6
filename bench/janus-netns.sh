#!/usr/bin/env bash
# Run Janus (Debian package `janus`, videoroom plugin, plain HTTP API) in a network
# namespace of its own, for loopback-only benchmarks against Conclave.
#
#   bench/janus-netns.sh start <netns-name> <workdir>   # prints Janus's PID
#   bench/janus-netns.sh stop  <netns-name>
#   bench/janus-netns.sh status <netns-name>            # exit 0 when Janus answers
#
# Why a namespace: libnice never gathers ICE candidates on a loopback device, so Janus
# on a machine whose only network is `lo` fails every publish ("Error setting ICE
# locally", 490). In the namespace, 127.0.0.1/8 is moved from `lo` to one end of a veth
# pair (both ends stay inside the namespace; the kernel here has no `dummy` device).
# Local traffic to 127.0.0.1 still works for every process in the namespace (UDP and
# TCP), and libnice sees 127.0.0.1 on an ordinary device and gathers on it. Only
# 127.0.0.1 itself is local there (not the rest of 127.0.0.0/8). Clients (the load
# generator, and Conclave when both are measured in one run) run in the same namespace:
#   ip netns exec <netns-name> <command>
#
# `start` is idempotent: if Janus already answers in that namespace it only prints its
# PID. `stop` kills the Janus started there and deletes the namespace.
# Needs root (ip netns). Environment knobs (all optional):
#   JANUS_HTTP_PORT (8088)  JANUS_RTP_PORT_RANGE (20000-40000)  JANUS_DEBUG_LEVEL (3)
#   JANUS_EVENT_LOOPS (0 = Janus's default, a thread per PeerConnection)
#   JANUS_START_TIMEOUT seconds (20)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
templates="$here/janus"
http_port="${JANUS_HTTP_PORT:-8088}"
rtp_range="${JANUS_RTP_PORT_RANGE:-20000-40000}"
debug_level="${JANUS_DEBUG_LEVEL:-3}"
event_loops="${JANUS_EVENT_LOOPS:-0}"
start_timeout="${JANUS_START_TIMEOUT:-20}"
veth_a="jveth0"   # carries 127.0.0.1/8 inside the namespace
veth_b="jveth1"   # its peer, also inside the namespace, only there to keep the link up

die() { echo "janus-netns: $*" >&2; exit 1; }
usage() { sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

# PIDs of janus processes inside the namespace.
janus_pids() {
    local ns="$1" pid
    ns_exists "$ns" || return 0
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "janus" ]; then echo "$pid"; fi
    done
}

janus_answers() {
    ip netns exec "$1" curl -fsS --max-time 2 "http://127.0.0.1:$http_port/janus/info" \
        >/dev/null 2>&1
}

setup_netns() {
    local ns="$1"
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show "$veth_a" >/dev/null 2>&1; then
        ip -n "$ns" link add "$veth_a" type veth peer name "$veth_b"
    fi
    if ip -n "$ns" -4 addr show dev lo | grep -q 'inet 127\.0\.0\.1/'; then
        ip -n "$ns" addr del 127.0.0.1/8 dev lo
    fi
    if ! ip -n "$ns" -4 addr show dev "$veth_a" | grep -q 'inet 127\.0\.0\.1/'; then
        ip -n "$ns" addr add 127.0.0.1/8 dev "$veth_a"
    fi
    ip -n "$ns" link set "$veth_a" up
    ip -n "$ns" link set "$veth_b" up
}

write_config() {
    local workdir="$1" f lib=""
    mkdir -p "$workdir/plugins" "$workdir/transports" "$workdir/events" "$workdir/loggers"
    for f in janus.jcfg janus.transport.http.jcfg janus.plugin.videoroom.jcfg; do
        sed -e "s|@WORKDIR@|$workdir|g" \
            -e "s|@DEBUG_LEVEL@|$debug_level|g" \
            -e "s|@EVENT_LOOPS@|$event_loops|g" \
            -e "s|@RTP_PORT_RANGE@|$rtp_range|g" \
            -e "s|@ICE_ADDRESS@|127.0.0.1|g" \
            -e "s|@HTTP_PORT@|$http_port|g" \
            "$templates/$f.in" >"$workdir/$f"
    done
    # Only the videoroom plugin and the HTTP transport: folders that hold nothing else.
    for d in /usr/lib/*/janus /usr/lib/janus /usr/local/lib/janus /opt/janus/lib/janus; do
        if [ -e "$d/plugins/libjanus_videoroom.so" ]; then lib="$d"; break; fi
    done
    [ -n "$lib" ] || die "libjanus_videoroom.so not found (is the janus package installed?)"
    rm -f "$workdir"/plugins/*.so "$workdir"/transports/*.so "$workdir"/events/*.so \
        "$workdir"/loggers/*.so
    ln -s "$lib/plugins/libjanus_videoroom.so" "$workdir/plugins/libjanus_videoroom.so"
    ln -s "$lib/transports/libjanus_http.so" "$workdir/transports/libjanus_http.so"
}

cmd_start() {
    [ $# -eq 2 ] || usage
    local ns="$1" workdir="$2" pid i
    command -v janus >/dev/null || die "janus is not installed (apt-get install -y janus)"
    command -v curl >/dev/null || die "curl is not installed"
    [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
    mkdir -p "$workdir"
    workdir="$(cd "$workdir" && pwd)"

    pid="$(janus_pids "$ns" | head -n1)"
    if [ -n "$pid" ] && janus_answers "$ns"; then echo "$pid"; return 0; fi
    if [ -n "$pid" ]; then
        # A janus that does not answer (still starting, or stuck): give it a moment.
        for ((i = 0; i < 10 * start_timeout; i++)); do
            if janus_answers "$ns"; then echo "$pid"; return 0; fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        die "a janus (pid $pid) runs in $ns but does not answer; run: $0 stop $ns"
    fi

    setup_netns "$ns"
    write_config "$workdir"
    : >"$workdir/janus.log"
    # `ip netns exec` execs janus, so $! is Janus's own PID. setsid + nohup: Janus
    # outlives this script and the terminal. Its stdout/stderr go to janus.out.
    setsid nohup ip netns exec "$ns" janus \
        --configs-folder="$workdir" --config="$workdir/janus.jcfg" \
        --pid-file="$workdir/janus.pid" \
        >"$workdir/janus.out" 2>&1 </dev/null &
    pid=$!
    for ((i = 0; i < 10 * start_timeout; i++)); do
        if janus_answers "$ns"; then
            echo "$pid"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$workdir/janus.out" "$workdir/janus.log" >&2 || true
            die "janus exited during start-up (see $workdir/janus.log)"
        fi
        sleep 0.1
    done
    tail -n 30 "$workdir/janus.log" >&2 || true
    die "janus did not answer on http://127.0.0.1:$http_port/janus/info within ${start_timeout}s"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    local ns="$1" pids pid i others
    [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
    ns_exists "$ns" || return 0
    pids="$(janus_pids "$ns")"
    if [ -n "$pids" ]; then
        for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
        for ((i = 0; i < 100; i++)); do
            others=""
            for pid in $pids; do kill -0 "$pid" 2>/dev/null && others="$others $pid"; done
            [ -z "$others" ] && break
            sleep 0.1
        done
        for pid in $others; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    others="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    if [ -n "${others// /}" ]; then
        echo "janus-netns: processes still in $ns (left running): $others" >&2
    fi
    ip netns del "$ns"
}

cmd_status() {
    [ $# -eq 1 ] || usage
    local pid
    pid="$(janus_pids "$1" | head -n1)"
    if [ -n "$pid" ] && janus_answers "$1"; then echo "$pid"; return 0; fi
    return 1
}

[ $# -ge 1 ] || usage
sub="$1"; shift
case "$sub" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
esac
