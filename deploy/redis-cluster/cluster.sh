#!/bin/sh
# Makes the Redis Cluster of NODES (compose.cluster.yaml, k8s/redis-cluster.yaml).
#
#   sh cluster.sh create   once every node answers: when none of them belongs to a
#                          cluster yet, redis-cli --cluster create with one replica
#                          per primary; otherwise the nodes only meet again (below).
#                          Safe to run at every start of the stack.
#   sh cluster.sh rejoin   on a node that starts again (SELF): if it belongs to a
#                          cluster, it meets every other node at its current address.
#
# Nodes find each other by the addresses kept in their nodes.conf. A node that
# comes back with a new address tells the others itself; when all of them come back
# with new ones (a whole stack recreated, every pod rescheduled) nobody can reach
# anybody, which meeting again by name repairs. CLUSTER MEET and --cluster create
# take IP addresses, so names are resolved here.
#
# Environment:
#   NODES  every node's host:port, separated by spaces (redis-cli chooses which
#          become primaries and gives each one replica)
#   SELF   rejoin: this node's host:port
set -eu

: "${NODES:?host:port ...}"

address() { # the IP address of a host name (or of an address)
    getent hosts "$1" | awk 'NR == 1 { print $1 }'
}

answers() { # host port: whether the node answers PING
    [ "$(timeout 3 redis-cli -h "$1" -p "$2" PING 2>/dev/null)" = PONG ]
}

cluster_info() { # host port field: one field of the node's CLUSTER INFO
    timeout 3 redis-cli -h "$1" -p "$2" CLUSTER INFO 2>/dev/null |
        tr -d '\r' | awk -F: -v field="$3" '$1 == field { print $2 }'
}

meet_all() { # node host: the node of NODES reached at host meets every other one
    for other in $NODES; do
        [ "$other" = "$1" ] && continue
        ip=$(address "${other%:*}") || continue
        [ -n "$ip" ] || continue
        timeout 3 redis-cli -h "$2" -p "${1##*:}" CLUSTER MEET "$ip" "${other##*:}" \
            >/dev/null 2>&1 || true
    done
}

create() {
    tries=0
    for node in $NODES; do
        until answers "${node%:*}" "${node##*:}"; do
            tries=$((tries + 1))
            if [ "$tries" -gt 120 ]; then
                echo "cluster.sh: $node does not answer" >&2
                exit 1
            fi
            sleep 1
        done
    done
    formed=no
    for node in $NODES; do
        known=$(cluster_info "${node%:*}" "${node##*:}" cluster_known_nodes)
        case "$known" in
        1) ;;
        [0-9]*) formed=yes ;;
        *)
            echo "cluster.sh: $node is not a cluster node (cluster-enabled yes?)" >&2
            exit 1
            ;;
        esac
    done
    if [ "$formed" = yes ]; then
        echo "cluster.sh: the nodes already form a cluster; they meet again"
        for node in $NODES; do
            meet_all "$node" "${node%:*}"
        done
        first=${NODES%% *}
        assigned=$(cluster_info "${first%:*}" "${first##*:}" cluster_slots_assigned)
        if [ "$assigned" != 16384 ]; then
            echo "cluster.sh: only ${assigned:-no} of 16384 slots are assigned (a create" \
                "that stopped half-way?): see redis-cli --cluster check and fix" >&2
            exit 1
        fi
        exit 0
    fi
    addresses=""
    for node in $NODES; do
        ip=$(address "${node%:*}")
        if [ -z "$ip" ]; then
            echo "cluster.sh: ${node%:*} does not resolve" >&2
            exit 1
        fi
        addresses="$addresses $ip:${node##*:}"
    done
    # shellcheck disable=SC2086 # one argument per node
    exec redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
}

rejoin() {
    : "${SELF:?host:port of this node}"
    port=${SELF##*:}
    tries=0 # the node answers once it has loaded its data
    until answers 127.0.0.1 "$port" || [ "$tries" -ge 300 ]; do
        sleep 1
        tries=$((tries + 1))
    done
    known=$(cluster_info 127.0.0.1 "$port" cluster_known_nodes) || true
    case "$known" in
    1 | "") ;;
    *) meet_all "$SELF" 127.0.0.1 ;;
    esac
}

case "${1:-}" in
create) create ;;
rejoin) rejoin || true ;;
*)
    echo "usage: cluster.sh create | rejoin" >&2
    exit 2
    ;;
esac
