#!/bin/sh
# Builds acceptance-suite:dev, the sample system's acceptance suite in a FROM-scratch image:
# images/build-suite.sh BINARY. Runs /suite/acceptance-suite with /suite/features (or the
# directory given, e.g. /suite/sample-features for the demo's sample system), writing reports to
# $REPORTS_DIR (default /reports).
set -eu

. "$(dirname "$0")/quiet-build.sh"

binary=$1
root=$(cd "$(dirname "$0")/.." && pwd)
ctx="$root/target/images/acceptance-suite"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/suite/features" "$ctx/rootfs/suite/sample-features" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/reports"
cp "$binary" "$ctx/rootfs/suite/acceptance-suite"
cp "$root"/examples/acceptance-suite/features/*.feature "$ctx/rootfs/suite/features/"
cp "$root"/examples/acceptance-suite/sample-features/*.feature "$ctx/rootfs/suite/sample-features/"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'hosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
chmod 1777 "$ctx/rootfs/tmp" "$ctx/rootfs/reports"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
WORKDIR /suite
ENV REPORTS_DIR=/reports
CMD ["/suite/acceptance-suite"]
DOCKERFILE
quiet_build docker build --quiet -t acceptance-suite:dev "$ctx"
size=$(docker image inspect --format '{{.Size}}' acceptance-suite:dev)
echo "acceptance-suite:dev  $(( (size + 524288) / 1048576 )) MB ($size bytes)"
