#!/bin/sh
# Installs what the chaos harness (test/chaos) needs to inject network
# faults: nftables (nft) and iproute2 (ip). Called by make chaos and make
# test. Without root or apt-get it only reports what is missing: the harness
# then says so loudly and fails when CI=true.
set -eu
missing=""
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-chaos-deps: missing:$missing (needs root and apt-get to install); network faults will not be injectable" >&2
	exit 0
fi
echo "ensure-chaos-deps: installing$missing" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
