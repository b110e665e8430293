# Sourced by images/build*.sh. The daemon's classic builder (BuildKit's buildx is not installed
# on our machines) prints a deprecation notice on every build: its output is kept unless the
# build fails.
quiet_build() {
    log=$(mktemp)
    if ! DOCKER_BUILDKIT=0 "$@" >/dev/null 2>"$log"; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}
