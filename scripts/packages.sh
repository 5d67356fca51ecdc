# Sourced (not run) by the scripts that install what they need on a fresh
# Debian machine: each one declares its needs, then calls install_missing.
#
#   . scripts/packages.sh
#   need ip iproute2                     # by command
#   [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
#   install_missing

# Debian packages to install.
missing=()

# need COMMAND PACKAGE: PACKAGE is installed unless COMMAND is on PATH.
need() {
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

# Installs the collected packages, if any.
install_missing() {
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
