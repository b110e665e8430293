#!/bin/sh
# Builds the demo's sample system as three FROM-scratch images from one static binary:
# images/build-samples.sh BINARY -> sample/api-gateway:dev, sample/user-service:dev,
# sample/role-service:dev (each runs /sample-service ROLE on port 8080).
set -eu

. "$(dirname "$0")/quiet-build.sh"

binary=$1
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$binary" ] || { echo "images/build-samples.sh: $binary not built" >&2; exit 1; }
for pair in api-gateway:gateway user-service:users role-service:roles; do
  name=${pair%%:*}
  role=${pair#*:}
  ctx="$root/target/images/sample-$name"
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
  cp "$binary" "$ctx/rootfs/sample-service"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  printf 'hosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
  chmod 1777 "$ctx/rootfs/tmp"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
EXPOSE 8080
ENTRYPOINT ["/sample-service"]
CMD ["$role"]
DOCKERFILE
  quiet_build docker build --quiet -t "sample/$name:dev" "$ctx"
  size=$(docker image inspect --format '{{.Size}}' "sample/$name:dev")
  echo "sample/$name:dev  $(( (size + 524288) / 1048576 )) MB ($size bytes)"
done
