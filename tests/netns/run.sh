#!/usr/bin/env bash
# The network tests: a server namespace and a client namespace joined by a veth pair
# (server 10.77.0.1, client 10.77.0.2), the server on 10.77.0.1:443 as in production, the
# browsers in the client namespace. The tests add firewall rules and packet loss (nft) and
# delay (iptables NFQUEUE to tests/netns/delay.py, as this kernel has no netem) inside the
# namespaces; nothing touches the host's own network.
#
# Needs root (network namespaces), iproute2, nftables, iptables and python3. Removes the namespaces on exit,
# also after a failure or Ctrl-C.
#   tests/netns/run.sh            set up, run tests/netns/*.test.mjs, tear down
set -euo pipefail
cd "$(dirname "$0")/../.."

SRV="cnv-srv-$$"
CLI="cnv-cli-$$"

teardown() {
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
}
trap teardown EXIT INT TERM

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/netns/run.sh needs root (network namespaces)" >&2
  exit 1
fi

ip netns add "$SRV"
ip netns add "$CLI"
ip link add "v-$$-s" type veth peer name "v-$$-c"
ip link set "v-$$-s" netns "$SRV"
ip link set "v-$$-c" netns "$CLI"
# No IPv6 on the test link: its address would become valid a moment after the link is up,
# and Chromium aborts page loads on that network change (ERR_NETWORK_CHANGED).
for ns in "$SRV" "$CLI"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up
ip -n "$SRV" addr add 10.77.0.1/24 dev "v-$$-s"
ip -n "$CLI" addr add 10.77.0.2/24 dev "v-$$-c"
ip -n "$SRV" link set "v-$$-s" up
ip -n "$CLI" link set "v-$$-c" up

export E2E_NETNS_SRV="$SRV" E2E_NETNS_CLI="$CLI"
# The test runner and its browsers run in the client namespace (puppeteer reaches Firefox on
# the namespace's own loopback); the server is started in the server namespace from there.
ip netns exec "$CLI" node --test --test-concurrency=1 ${E2E_NETNS_PATTERN:+--test-name-pattern "$E2E_NETNS_PATTERN"} tests/netns/
