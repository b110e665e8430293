#!/bin/sh
# What `make demo`, `make test` and .ci/run need on the machine, checked before anything is
# compiled: ci/preflight.sh demo|test
# Missing Debian packages are installed with apt-get when running as root (as CI does);
# otherwise one line says the exact command. PREFLIGHT_INSTALL=never only reports (tests).
set -eu

purpose=${1:-test}
case "$purpose" in
demo)
    # The demo's registry, its CA bundle, and the Docker daemon that runs everything.
    wanted="docker-registry:docker-registry ca-certificates:/etc/ssl/certs/ca-certificates.crt"
    ;;
test)
    # ca-certificates  the CA bundle copied into every image
    # tar              reading image filesystems in the image tests
    # docker-registry  the reference OCI registry (distribution 2.8) the registry tests run
    # skopeo           an independent registry client to check interop
    # umoci            builds OCI layouts without a daemon
    # apache2-utils    htpasswd, for the registry's basic-auth setup
    # openssl          test certificates (TLS registry, token signing)
    # cucumber         a real cucumber runner (Ruby) for acceptance-run's tests
    # golang-go        Go (GOPATH mode) for the unit-test task's sample repositories
    # nodejs, npm      Node for the same (npm install, npm test, gulp test)
    wanted="ca-certificates:/etc/ssl/certs/ca-certificates.crt tar:tar docker-registry:docker-registry skopeo:skopeo umoci:umoci apache2-utils:htpasswd openssl:openssl cucumber:cucumber golang-go:go nodejs:node npm:npm"
    ;;
*)
    echo "usage: ci/preflight.sh demo|test" >&2
    exit 2
    ;;
esac

missing=""
for pair in $wanted; do
    package=${pair%%:*}
    probe=${pair#*:}
    case "$probe" in
    /*) [ -e "$probe" ] && continue ;;
    *) command -v "$probe" >/dev/null 2>&1 && continue ;;
    esac
    missing="$missing $package"
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && [ "${PREFLIGHT_INSTALL:-auto}" != never ] && command -v apt-get >/dev/null 2>&1; then
        echo "preflight: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        apt-get install -y -qq --no-install-recommends $missing
    else
        echo "preflight: missing$missing; run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi

command -v docker >/dev/null 2>&1 || {
    echo "preflight: the docker CLI is missing; install Docker Engine (the images and the demo's pods run on it)" >&2
    exit 1
}
docker info >/dev/null 2>&1 || {
    echo "preflight: the Docker daemon is not reachable at ${DOCKER_HOST:-/var/run/docker.sock}; start it" >&2
    exit 1
}
if [ "$purpose" = test ]; then
    command -v kubectl >/dev/null 2>&1 || {
        echo "preflight: kubectl is missing; the Kubernetes fake's fidelity tests use it as referee" >&2
        exit 1
    }
fi
exit 0
