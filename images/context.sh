#!/bin/sh
# Lays out the build context of one resource image: images/context.sh RESOURCE BINARY DIR
#   DIR/rootfs/opt/resource/RESOURCE            the static binary
#   DIR/rootfs/opt/resource/{check,in,out}      links to it (the step is argv[0]'s basename)
#   DIR/rootfs/etc/ssl/certs/ca-certificates.crt, DIR/rootfs/etc/nsswitch.conf, DIR/rootfs/tmp
# images/Dockerfile builds the image from it; images/build.sh (make images) and the pipeline's
# resource-types job (oci-build-task) both use this one layout.
set -eu
resource=$1
binary=$2
ctx=$3
bundle=/etc/ssl/certs/ca-certificates.crt

[ -f "$binary" ] || { echo "images/context.sh: $binary not built" >&2; exit 1; }
[ -f "$bundle" ] || { echo "images/context.sh: $bundle missing; apt-get install ca-certificates" >&2; exit 1; }

rm -rf "$ctx"
mkdir -p "$ctx/rootfs/opt/resource" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
cp "$binary" "$ctx/rootfs/opt/resource/$resource"
for step in check in out; do ln -s "$resource" "$ctx/rootfs/opt/resource/$step"; done
cp "$bundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'hosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
chmod 1777 "$ctx/rootfs/tmp"
