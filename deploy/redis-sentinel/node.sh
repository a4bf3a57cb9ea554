#!/bin/sh
# A data node of the Sentinel set (compose.sentinel.yaml, k8s/redis-sentinel.yaml).
#
#   sh node.sh start       write the node's configuration and run redis-server
#   sh node.sh step-down   if this node is the primary, hold writes until a replica
#                          has them all and have the sentinels promote it (before a
#                          planned stop: a rolling update then loses no write)
#
# The role is decided at every start, never kept from the last run: the node asks
# the sentinels which node is the primary now and replicates from it. Only when no
# sentinel answers (the first start of the set) is FIRST_PRIMARY the primary. So a
# former primary that comes back after a failover rejoins as a replica of the one
# that was promoted instead of taking writes beside it. (Should one start as a
# primary while the sentinels know another, they make it a replica within seconds;
# botgw writes only where the sentinels point.)
#
# Environment:
#   NODE_HOST      this node's name, as the other nodes, the sentinels and botgw reach it
#   PORT           its port (6379)
#   FIRST_PRIMARY  host:port of the node that is primary when no sentinel names one
#   SENTINELS      the sentinels' host:port, separated by spaces
#   MASTER_NAME    the name the sentinels know the primary by (botgw)
#   CONFIG         the settings every data node shares (/etc/botgw-redis/redis.conf)
#   DATA           the node's directory: AOF files and the generated redis.conf (/data)
set -eu

: "${NODE_HOST:?name this node}" "${FIRST_PRIMARY:?host:port}" "${SENTINELS:?host:port ...}"
PORT=${PORT:-6379}
MASTER_NAME=${MASTER_NAME:-botgw}
CONFIG=${CONFIG:-/etc/botgw-redis/redis.conf}
DATA=${DATA:-/data}

# "host port" of the primary as the first sentinel that knows it names it
ask_sentinels() {
    for sentinel in $SENTINELS; do
        answer=$(timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
            SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) || continue
        set -- $answer
        if [ $# -eq 2 ]; then
            echo "$1 $2"
            return 0
        fi
    done
    return 1
}

start() {
    # A node that ran before waits a little for the sentinels (they may be starting
    # with it) rather than fall back to its first role, which may be stale by now.
    tries=0
    if [ -e "$DATA/redis.conf" ]; then
        tries=30
    fi
    until found=$(ask_sentinels) || [ "$tries" -le 0 ]; do
        sleep 1
        tries=$((tries - 1))
    done
    if [ -n "$found" ]; then
        primary_host=${found% *}
        primary_port=${found#* }
    else
        primary_host=${FIRST_PRIMARY%:*}
        primary_port=${FIRST_PRIMARY##*:}
    fi
    {
        cat "$CONFIG"
        echo "port $PORT"
        echo "dir $DATA"
        # the name the sentinels and botgw are told, should this node be promoted
        echo "replica-announce-ip $NODE_HOST"
        echo "replica-announce-port $PORT"
        if [ "$primary_host:$primary_port" != "$NODE_HOST:$PORT" ]; then
            echo "replicaof $primary_host $primary_port"
        fi
    } >"$DATA/redis.conf"
    # the image's entrypoint runs the server as the redis user when started as root
    if command -v docker-entrypoint.sh >/dev/null; then
        exec docker-entrypoint.sh redis-server "$DATA/redis.conf"
    fi
    exec redis-server "$DATA/redis.conf"
}

role() {
    redis-cli -p "$PORT" ROLE 2>/dev/null | head -n 1
}

# how many replicas have not yet confirmed everything the primary took
replicas_behind() {
    redis-cli -p "$PORT" INFO replication 2>/dev/null | tr -d '\r' | awk -F'[:,=]' '
        $1 == "master_repl_offset" { primary = $2 }
        $1 ~ /^slave[0-9]+$/ { for (i = 2; i < NF; i += 2) if ($i == "offset") offset[$1] = $(i + 1) }
        END { n = 0; for (r in offset) if (offset[r] != primary) n++; print n }'
}

step_down() {
    [ "$(role)" = master ] || return 0
    # Hold writes until every replica has confirmed what this node took, so the
    # replica promoted has every acknowledged write. Writers wait meanwhile; once
    # this node is a replica (or gone) they are refused and go to the new primary.
    redis-cli -p "$PORT" CLIENT PAUSE 30000 WRITE >/dev/null
    tries=0
    while [ "$(replicas_behind)" != 0 ] && [ "$tries" -lt 30 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    asked=no
    for sentinel in $SENTINELS; do
        if timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" \
            SENTINEL FAILOVER "$MASTER_NAME" 2>/dev/null | grep -q OK; then
            asked=yes
            break
        fi
    done
    # once the sentinels name another primary this node may stop (it comes back
    # as a replica); should they not, it takes writes again
    tries=0
    while [ "$asked" = yes ] && [ "$tries" -lt 40 ]; do
        found=$(ask_sentinels) || found=""
        if [ -n "$found" ] && [ "${found% *}:${found#* }" != "$NODE_HOST:$PORT" ]; then
            return 0
        fi
        sleep 0.5
        tries=$((tries + 1))
    done
    redis-cli -p "$PORT" CLIENT UNPAUSE >/dev/null
}

case "${1:-}" in
start) start ;;
step-down) step_down ;;
*)
    echo "usage: node.sh start | step-down" >&2
    exit 2
    ;;
esac
