#!/bin/sh
# A sentinel of the Sentinel set (compose.sentinel.yaml, k8s/redis-sentinel.yaml).
#
#   sh sentinel.sh
#
# A sentinel rewrites its configuration file as it learns (the primary after a
# failover, the other sentinels, the epochs), so the file lives in DATA and is
# written here only when it is missing: on the first start, or when the sentinel
# comes back without its disk. It then watches the primary the other sentinels
# name, or FIRST_PRIMARY when none answers. Every name is announced as a host
# name rather than an address, so a node or sentinel that comes back with a new
# address is still the one everybody knows.
#
# Environment:
#   SENTINEL_HOST  this sentinel's name, as the others and botgw reach it
#   SENTINEL_PORT  its port (26379)
#   SENTINELS      every sentinel's host:port, separated by spaces (this one may be among them)
#   FIRST_PRIMARY  host:port of the primary when no other sentinel names one
#   MASTER_NAME    the name the primary is watched under (botgw)
#   QUORUM         sentinels that must find the primary down to start a failover (2)
#   DATA           the directory of sentinel.conf (/data)
set -eu

: "${SENTINEL_HOST:?name this sentinel}" "${SENTINELS:?host:port ...}" "${FIRST_PRIMARY:?host:port}"
SENTINEL_PORT=${SENTINEL_PORT:-26379}
MASTER_NAME=${MASTER_NAME:-botgw}
QUORUM=${QUORUM:-2}
DATA=${DATA:-/data}
file="$DATA/sentinel.conf"

# "host port" of the primary as the first other sentinel that knows it names it
ask_sentinels() {
    for sentinel in $SENTINELS; do
        [ "$sentinel" = "$SENTINEL_HOST:$SENTINEL_PORT" ] && continue
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

if [ ! -s "$file" ]; then
    if found=$(ask_sentinels); then
        primary_host=${found% *}
        primary_port=${found#* }
    else
        primary_host=${FIRST_PRIMARY%:*}
        primary_port=${FIRST_PRIMARY##*:}
    fi
    # a sentinel does not start on a primary name that does not resolve (yet)
    tries=0
    until getent hosts "$primary_host" >/dev/null || [ "$tries" -ge 60 ]; do
        sleep 1
        tries=$((tries + 1))
    done
    cat >"$file.new" <<EOF
port $SENTINEL_PORT
dir $DATA
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SENTINEL_HOST
sentinel announce-port $SENTINEL_PORT
sentinel monitor $MASTER_NAME $primary_host $primary_port $QUORUM
# the primary counts as down after 5 s without an answer; a failover that has
# not finished in 60 s is given up and tried again later
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 60000
sentinel parallel-syncs $MASTER_NAME 1
EOF
    mv "$file.new" "$file"
fi

# the image's entrypoint runs the server as the redis user when started as root
if command -v docker-entrypoint.sh >/dev/null; then
    exec docker-entrypoint.sh redis-server "$file" --sentinel
fi
exec redis-server "$file" --sentinel
