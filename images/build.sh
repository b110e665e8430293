#!/bin/sh
# Builds the image of one resource from its static binary: images/build.sh RESOURCE BINARY
# Tags it RESOURCE:dev and prints its size.
set -eu

. "$(dirname "$0")/quiet-build.sh"

resource=$1
binary=$2
root=$(cd "$(dirname "$0")/.." && pwd)
ctx="$root/target/images/$resource"
"$root/images/context.sh" "$resource" "$binary" "$ctx"

quiet_build docker build --quiet --build-arg "RESOURCE=$resource" \
  -f "$root/images/Dockerfile" -t "$resource:dev" "$ctx"
size=$(docker image inspect --format '{{.Size}}' "$resource:dev")
echo "$resource:dev  $(( (size + 524288) / 1048576 )) MB ($size bytes)"
