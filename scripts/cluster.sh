#!/usr/bin/env bash
# A three-node tokend cluster on this machine, for trying things out.
#
#   scripts/cluster.sh start       start the nodes that are not running, wait for
#                                  a leader, initialise (first time) and print the root token
#   scripts/cluster.sh stop        SIGTERM every node and wait for it to exit
#   scripts/cluster.sh status      which nodes run and who leads
#   scripts/cluster.sh leader-pid  the pid of the current leader (for kill -9)
#   scripts/cluster.sh follower-addr  the HTTP API URL of a running node that is
#                                  not the leader (a client address that survives
#                                  killing the leader)
#
# Node N (1-3) listens on HTTP 82N0, raft 82N1, gossip 83N1 — node1 is
# 8200/8201/8301, node2 8210/8211/8311, node3 8220/8221/8321 — and keeps its
# data in tmp/cluster/nodeN/data, its log in tmp/cluster/nodeN/tokend.log and
# its pid in tmp/cluster/nodeN/pid. The root token is printed once, on the
# first start, and saved (mode 0600) in tmp/cluster/root-token for
# convenience. The first start also creates the keys every node shares
# (mode 0600, outside the data dirs): tmp/cluster/token-hash.key
# (-token-hash-key-file) and tmp/cluster/gossip.key (-cluster-key; after a
# `tokend operator keyring` rotation the nodes use the keyring saved in
# their data dirs). rm -rf tmp/cluster resets everything.
#
# The nodes talk to each other over mutual TLS (raft, forwarded writes,
# lease grants): on the first start `tokend operator gen-certs` creates a
# CA and one certificate per node in tmp/cluster/certs. CLUSTER_TLS=0 runs
# the nodes on plain TCP instead. The HTTP API stays plain http.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/tokend}
DIR=${CLUSTER_DIR:-tmp/cluster}
NODES=(1 2 3)
WAIT=${CLUSTER_WAIT:-30}
CLUSTER_TLS=${CLUSTER_TLS:-1}
CERTS="$DIR/certs"

http_port() { echo $((8200 + ($1 - 1) * 10)); }
raft_port() { echo $((8201 + ($1 - 1) * 10)); }
gossip_port() { echo $((8301 + ($1 - 1) * 10)); }
api() { echo "http://127.0.0.1:$(http_port "$1")"; }

# running N: true if node N's recorded pid is a live tokend process.
running() {
	local pidf="$DIR/node$1/pid" pid
	[ -f "$pidf" ] || return 1
	pid=$(cat "$pidf")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# A killed node may linger as a zombie until its parent reaps it.
	[ "$(ps -p "$pid" -o comm= 2>/dev/null)" = "tokend" ] && [[ "$(ps -p "$pid" -o stat= 2>/dev/null)" != Z* ]]
}

leader_addr() { # the leader's API address as node N sees it ("" if none)
	curl -fsS --max-time 2 "$(api "$1")/v1/sys/leader" 2>/dev/null |
		sed -n 's/.*"leader_address":"\([^"]*\)".*/\1/p' || true
}

# ensure_keys creates the shared key files once.
ensure_keys() {
	mkdir -p "$DIR"
	local f
	for f in token-hash.key gossip.key; do
		if [ ! -s "$DIR/$f" ]; then
			(umask 077 && "$BIN" operator keygen -bytes 32 >"$DIR/$f.tmp" && mv "$DIR/$f.tmp" "$DIR/$f")
		fi
	done
}

start_node() {
	local n=$1 d="$DIR/node$1" joins=() m
	mkdir -p "$d/data"
	ensure_keys
	for m in "${NODES[@]}"; do
		[ "$m" = "$n" ] || joins+=("127.0.0.1:$(gossip_port "$m")")
	done
	local tlsflags=()
	if [ "$CLUSTER_TLS" = 1 ]; then
		tlsflags=(-cluster-tls-cert-file "$CERTS/node$n.pem"
			-cluster-tls-key-file "$CERTS/node$n-key.pem"
			-cluster-tls-ca-file "$CERTS/ca.pem")
	fi
	local IFS=,
	nohup "$BIN" server "${tlsflags[@]}" \
		-node-id "node$n" \
		-data-dir "$d/data" \
		-http-addr "127.0.0.1:$(http_port "$n")" \
		-raft-addr "127.0.0.1:$(raft_port "$n")" \
		-gossip-addr "127.0.0.1:$(gossip_port "$n")" \
		-join "${joins[*]}" \
		-bootstrap-expect 3 \
		-token-hash-key-file "$DIR/token-hash.key" \
		-cluster-key "$(cat "$DIR/gossip.key")" \
		-log-format text \
		>>"$d/tokend.log" 2>&1 </dev/null &
	echo $! >"$d/pid"
	echo "started node$n (pid $!): $(api "$n"), log $d/tokend.log"
}

cmd_start() {
	if [ ! -x "$BIN" ]; then
		echo "$BIN not found: run make build" >&2
		exit 1
	fi
	command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
	local n
	if [ "$CLUSTER_TLS" = 1 ] && [ ! -f "$CERTS/ca.pem" ]; then
		mkdir -p "$DIR"
		"$BIN" operator gen-certs -dir "$CERTS" node1 node2 node3
	fi
	for n in "${NODES[@]}"; do
		if running "$n"; then
			echo "node$n already running (pid $(cat "$DIR/node$n/pid"))"
		else
			start_node "$n"
		fi
	done

	# Healthy = every node knows the same leader.
	local deadline=$((SECONDS + WAIT)) leader ok
	while :; do
		ok=1
		leader=$(leader_addr 1)
		for n in "${NODES[@]}"; do
			running "$n" || { echo "node$n exited; see $DIR/node$n/tokend.log" >&2; tail -5 "$DIR/node$n/tokend.log" >&2; exit 1; }
			local l
			l=$(leader_addr "$n")
			if [ -z "$l" ] || [ "$l" != "$leader" ]; then ok=0; fi
		done
		[ "$ok" = 1 ] && break
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "no common leader after ${WAIT}s; logs are in $DIR/node*/tokend.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "leader: $leader"

	local body code
	body=$(mktemp)
	code=$(curl -sS --max-time 10 -o "$body" -w '%{http_code}' -X PUT -d '{}' "$(api 1)/v1/sys/init")
	if [ "$code" = 200 ]; then
		local root
		root=$(sed -n 's/.*"root_token":"\([^"]*\)".*/\1/p' "$body")
		(umask 077 && printf '%s\n' "$root" >"$DIR/root-token")
		cat <<-EOF

		Cluster initialised. Root token (also saved in $DIR/root-token):

		    $root

		    export VAULT_ADDR=$(api 1)   # any node works: $(api 2), $(api 3)
		    export VAULT_TOKEN=\$(cat $DIR/root-token)

		EOF
	elif [ "$code" = 400 ]; then
		echo "cluster already initialised; the root token is in $DIR/root-token"
	else
		echo "PUT /v1/sys/init failed with HTTP $code: $(cat "$body")" >&2
		rm -f "$body"
		exit 1
	fi
	rm -f "$body"
}

cmd_stop() {
	local n pid stopped=0
	for n in "${NODES[@]}"; do
		if running "$n"; then
			pid=$(cat "$DIR/node$n/pid")
			kill -TERM "$pid"
			local deadline=$((SECONDS + 20))
			while kill -0 "$pid" 2>/dev/null; do
				if [ "$SECONDS" -ge "$deadline" ]; then
					echo "node$n (pid $pid) did not stop within 20s" >&2
					break
				fi
				sleep 0.1
			done
			echo "stopped node$n (pid $pid)"
			stopped=1
		fi
		rm -f "$DIR/node$n/pid"
	done
	[ "$stopped" = 1 ] || echo "no node was running"
}

cmd_status() {
	local n
	for n in "${NODES[@]}"; do
		if running "$n"; then
			echo "node$n running (pid $(cat "$DIR/node$n/pid")) $(api "$n"), leader: $(leader_addr "$n")"
		else
			echo "node$n stopped"
		fi
	done
}

cmd_leader_pid() {
	local n l
	for n in "${NODES[@]}"; do
		running "$n" || continue
		l=$(leader_addr "$n")
		[ -n "$l" ] || continue
		for m in "${NODES[@]}"; do
			if [ "$l" = "$(api "$m")" ] && running "$m"; then
				cat "$DIR/node$m/pid"
				return 0
			fi
		done
	done
	echo "no leader known" >&2
	return 1
}

cmd_follower_addr() {
	local n l
	for n in "${NODES[@]}"; do
		running "$n" || continue
		l=$(leader_addr "$n")
		if [ -n "$l" ] && [ "$l" != "$(api "$n")" ]; then
			api "$n"
			return 0
		fi
	done
	echo "no running follower" >&2
	return 1
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
leader-pid) cmd_leader_pid ;;
follower-addr) cmd_follower_addr ;;
*)
	echo "usage: $0 start|stop|status|leader-pid|follower-addr" >&2
	exit 2
	;;
esac
