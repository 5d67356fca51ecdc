#!/usr/bin/env bash
# Runs a Docker container on CNI networks, the plugin developer's habit
# from the CNI repository (docker-run.sh + exec-plugins.sh), done safely:
#
#   NETCONFPATH=/etc/cni/net.d CNI_PATH=/opt/cni/bin \
#       scripts/docker-run.sh [docker run options] IMAGE [COMMAND...]
#
# 1. starts a holder container with `docker run --net=none` (it only sleeps;
#    it owns the network namespace, /proc/<pid>/ns/net);
# 2. runs ADD for every config in NETCONFPATH, sorted (`*.conf` and
#    `*.conflist`; a list's plugins in order, each given the previous
#    result as prevResult), with CNI_IFNAME eth0, eth1, … (`lo` for a
#    loopback network);
# 3. runs `docker run --net=container:<holder> [options] IMAGE [COMMAND]`;
# 4. runs DEL in reverse order and removes the holder (and the command's
#    container, if Ctrl-C left it running): also when ADD or the command
#    fails, and on Ctrl-C. DEL failures are reported, and the rest still
#    runs.
#
# Environment: NETCONFPATH (default /etc/cni/net.d); CNI_PATH (default
# /opt/cni/bin:/usr/lib/cni); CNI_ARGS, CNI_TRACE and CNI_TRACE_DIR are
# passed to the plugins; DOCKER (default docker) and DOCKER_HOST to the
# Docker client; HOLDER_IMAGE (default: IMAGE) must have `sleep`. ADD
# results go to stderr. Exits with the command's status, or 1 when a
# network could not be added. Needs root, jq and a running Docker daemon.
set -euo pipefail

netconfpath=${NETCONFPATH:-/etc/cni/net.d}
cni_path=${CNI_PATH:-/opt/cni/bin:/usr/lib/cni}
docker=${DOCKER:-docker}

usage() {
    echo "usage: NETCONFPATH=DIR CNI_PATH=DIRS $0 [docker run options] IMAGE [COMMAND...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
command -v jq >/dev/null || { echo "docker-run.sh: needs jq (apt-get install jq)" >&2; exit 1; }

# The image is the first argument that is not an option (or an option's
# value); good enough for the holder's default.
image=
for arg in "$@"; do
    case "$arg" in -*) ;; *) image=$arg; break ;; esac
done
holder_image=${HOLDER_IMAGE:-$image}

holder=
# What was attached, in ADD order: config file, ifname, saved result.
attached_files=()
attached_ifnames=()
attached_results=()
work=$(mktemp -d)

log() { echo "docker-run.sh: $*" >&2; }

# find_plugin TYPE: its path in CNI_PATH.
find_plugin() {
    local dir
    IFS=: read -ra dirs <<<"$cni_path"
    for dir in "${dirs[@]}"; do
        [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
    done
    log "plugin $1 not found in CNI_PATH $cni_path"
    return 1
}

# exec_plugin COMMAND IFNAME CONFIG-JSON: runs the plugin CONFIG names.
exec_plugin() {
    local plugin
    plugin=$(find_plugin "$(jq -r .type <<<"$3")") || return 1
    CNI_COMMAND=$1 CNI_CONTAINERID=$holder CNI_NETNS=$netns CNI_IFNAME=$2 \
        CNI_PATH=$cni_path "$plugin" <<<"$3"
}

# The configs of a file: one for a .conf, the list's plugins for a
# .conflist (each with the list's name and cniVersion).
plugin_configs() {
    case "$1" in
    *.conflist) jq -c '. as $l | .plugins[] | . + {name: $l.name, cniVersion: $l.cniVersion}' "$1" ;;
    *) jq -c . "$1" ;;
    esac
}

# with_prev CONFIG RESULT: CONFIG with prevResult RESULT (none if empty).
with_prev() {
    if [ -n "$2" ]; then jq -c --argjson prev "$2" '. + {prevResult: $prev}' <<<"$1"; else echo "$1"; fi
}

# add FILE IFNAME RESULT-FILE: ADD of every plugin of FILE.
add() {
    local conf result=""
    while IFS= read -r conf; do
        result=$(exec_plugin ADD "$2" "$(with_prev "$conf" "$result")") || {
            log "ADD of $1 failed: $result"
            return 1
        }
    done < <(plugin_configs "$1")
    printf '%s\n' "$result" >"$3"
    echo "$1 ($2):" >&2
    jq . <<<"$result" >&2 || echo "$result" >&2
}

# del FILE IFNAME RESULT-FILE: DEL of FILE's plugins in reverse order, with
# the ADD result as prevResult from spec 0.4.0 on (as libcni does).
del() {
    local conf out prev="" status=0 version
    version=$(jq -r '.cniVersion // "0.1.0"' "$1")
    case "$version" in 0.1.* | 0.2.* | 0.3.*) ;; *) [ -s "$3" ] && prev=$(cat "$3") ;; esac
    while IFS= read -r conf; do
        out=$(exec_plugin DEL "$2" "$(with_prev "$conf" "$prev")") || {
            log "DEL of $1 failed: $out"
            status=1
        }
    done < <(plugin_configs "$1" | tac)
    return $status
}

cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    if [ -s "$work/cid" ]; then
        "$docker" rm -f "$(cat "$work/cid")" >/dev/null 2>&1 || true
    fi
    for ((i = ${#attached_files[@]} - 1; i >= 0; i--)); do
        del "${attached_files[$i]}" "${attached_ifnames[$i]}" "${attached_results[$i]}" || status=1
    done
    if [ -n "$holder" ]; then
        "$docker" rm -f "$holder" >/dev/null || log "could not remove the holder $holder"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

holder=$("$docker" run -d --net=none --entrypoint sleep "$holder_image" 2147483647)
pid=$("$docker" inspect -f '{{.State.Pid}}' "$holder")
netns=/proc/$pid/ns/net

shopt -s nullglob
configs=("$netconfpath"/*.conf "$netconfpath"/*.conflist)
mapfile -t configs < <(printf '%s\n' "${configs[@]}" | sort)
[ "${#configs[@]}" -gt 0 ] && [ -n "${configs[0]}" ] || { log "no *.conf or *.conflist in $netconfpath"; exit 1; }

n=0
for file in "${configs[@]}"; do
    first_type=$(plugin_configs "$file" | head -n1 | jq -r .type)
    if [ "$first_type" = loopback ]; then
        ifname=lo
    else
        ifname=eth$n
        n=$((n + 1))
    fi
    result_file=$work/$(basename "$file").result
    attached_files+=("$file")
    attached_ifnames+=("$ifname")
    attached_results+=("$result_file")
    add "$file" "$ifname" "$result_file" || exit 1
done

set +e
"$docker" run --rm --cidfile "$work/cid" --net=container:"$holder" "$@"
status=$?
set -e
exit "$status"
