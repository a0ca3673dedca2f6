#!/usr/bin/env bash
# A multi-host Stria network on one machine: one network namespace per host
# (mds, oss1..3, client1..2), each joined to a bridge in the root namespace by
# a veth pair, on the private subnet 10.254.77.0/24 only (no default route, no
# NAT, no forwarding set up). See docs/multihost-test.md.
#
#   scripts/netns-cluster.sh up     [--prefix P]   build it (undone again if a step fails)
#   scripts/netns-cluster.sh down   [--prefix P]   remove all of it; safe to repeat, also after a half-done up
#   scripts/netns-cluster.sh status [--prefix P]   show it; exit 0 only when complete
#
# Names, with P the prefix (default "stria-"):
#   namespace P<host>            e.g. stria-oss2
#   bridge    P br0              in the root namespace, 10.254.77.1/24
#   veth      P<host> (root side, a port of the bridge)  <->  eth0 (inside P<host>)
# Interface names are limited to 15 characters, so P is at most 8.
set -euo pipefail

SUBNET=10.254.77
BRIDGE_ADDR="$SUBNET.1"
# host:last octet
NODES=(mds:11 oss1:21 oss2:22 oss3:23 client1:31 client2:32)
WAIT_TRIES=50      # x 0.1 s: how long a link may take to come up or go away
NETNS_DIR=/var/run/netns

usage() {
  echo "usage: $0 up|down|status [--prefix P]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
ACTION=$1
shift
PREFIX=stria-
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    *) usage ;;
  esac
done
if ! [[ $PREFIX =~ ^[a-z0-9][a-z0-9-]{0,7}$ ]]; then
  echo "$0: prefix '$PREFIX' must be 1-8 of [a-z0-9-] (interface names are at most 15 characters)" >&2
  exit 2
fi
BR="${PREFIX}br0"

die() {
  echo "$0: $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and links)"
  command -v ip >/dev/null || die "the ip command (iproute2) is missing"
}

ns_exists() { [ -e "$NETNS_DIR/$1" ]; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# Waits (bounded) until cmd succeeds; returns 1 if it never did.
wait_for() {
  local i
  for ((i = 0; i < WAIT_TRIES; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

link_gone() { ! link_exists "$1"; }
ns_link_up() { ip -n "$1" -o link show dev eth0 2>/dev/null | grep -q 'LOWER_UP'; }
# 3 = BR_STATE_FORWARDING
port_forwarding() { [ "$(cat "/sys/class/net/$1/brport/state" 2>/dev/null)" = 3 ]; }

# Every address of our subnet must be ours: a second copy of this network
# (another prefix) would give the root namespace two routes to it.
check_subnet_free() {
  local dev
  while read -r _ dev _; do
    [ "$dev" = "$BR" ] && continue
    die "$SUBNET.0/24 is already in use on $dev (another netns cluster running?): take it down first"
  done < <(ip -o -4 addr show | awk -v s="$SUBNET." 'index($4, s) == 1')
}

do_up() {
  need_root
  check_subnet_free
  trap 'echo "$0: up failed; removing what was created" >&2; do_down >/dev/null 2>&1 || true' ERR
  if ! link_exists "$BR"; then
    ip link add "$BR" type bridge
  fi
  ip addr replace "$BRIDGE_ADDR/24" dev "$BR"
  ip link set "$BR" up
  local node host octet ns
  for node in "${NODES[@]}"; do
    host=${node%%:*}
    octet=${node##*:}
    ns="$PREFIX$host"
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    if ! link_exists "$ns"; then
      # the peer is born inside the namespace, so no name clashes in the root namespace
      ip link add "$ns" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$ns" master "$BR"
    ip link set "$ns" up
    ip -n "$ns" addr replace "$SUBNET.$octet/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  for node in "${NODES[@]}"; do
    ns="$PREFIX${node%%:*}"
    wait_for ns_link_up "$ns" || { echo "$0: eth0 in $ns did not come up" >&2; false; }
    wait_for port_forwarding "$ns" || { echo "$0: bridge port $ns is not forwarding" >&2; false; }
  done
  trap - ERR
  do_status
}

do_down() {
  need_root
  # Whoever reads our output may be gone (an interrupted test): a failed write must not
  # end a half-done `down`.
  trap '' PIPE
  local node ns pids pid
  for node in "${NODES[@]}"; do
    ns="$PREFIX${node%%:*}"
    if ns_exists "$ns"; then
      # A namespace lives on while a process is inside it: end what still runs there.
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      for pid in $pids; do
        echo "$0: killing process $pid left in $ns" >&2 || true
        kill -KILL "$pid" 2>/dev/null || true
      done
      ip netns del "$ns" 2>/dev/null || true
    fi
    # Removing the namespace removes the pair; the kernel does it asynchronously.
    if ! wait_for link_gone "$ns"; then
      ip link del "$ns" 2>/dev/null || true
    fi
  done
  if link_exists "$BR"; then
    ip link del "$BR"
  fi
  wait_for link_gone "$BR" || die "bridge $BR is still there"
  local left=0
  for node in "${NODES[@]}"; do
    ns="$PREFIX${node%%:*}"
    if ns_exists "$ns" || link_exists "$ns"; then
      echo "$0: $ns is still there" >&2
      left=1
    fi
  done
  [ $left -eq 0 ] || exit 1
  echo "down: prefix $PREFIX removed" || true
}

do_status() {
  need_root
  local complete=0 node host octet ns addr state
  if link_exists "$BR"; then
    addr=$(ip -o -4 addr show dev "$BR" | awk '{print $4}' | paste -sd, -)
    state=$(cat "/sys/class/net/$BR/operstate" 2>/dev/null || echo unknown)
    echo "bridge $BR ${addr:-no-address} $state"
  else
    echo "bridge $BR absent"
    complete=1
  fi
  for node in "${NODES[@]}"; do
    host=${node%%:*}
    octet=${node##*:}
    ns="$PREFIX$host"
    if ! ns_exists "$ns"; then
      echo "$host namespace $ns absent"
      complete=1
      continue
    fi
    addr=$(ip -n "$ns" -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}' | paste -sd, -)
    if ns_link_up "$ns" && [ "$addr" = "$SUBNET.$octet/24" ] && port_forwarding "$ns"; then
      state=up
    else
      state=down
      complete=1
    fi
    echo "$host namespace $ns eth0 ${addr:-no-address} link $ns $state"
  done
  return $complete
}

case $ACTION in
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
  *) usage ;;
esac
