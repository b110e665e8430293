#!/bin/sh
# The resource types' static binaries and their image build contexts, for the pipeline's
# resource-types job: runs in a Rust image with this repository as input `ci`, writes
# contexts/<type>/ (see images/context.sh) for oci-build-task.
set -eu
out=$(pwd)/contexts
cd ci
rustup target add x86_64-unknown-linux-gnu >/dev/null 2>&1 || true
make image-bins
for t in gcr-image k8s-deploy github-promote-pr acceptance-run; do
    images/context.sh "$t" "target/x86_64-unknown-linux-gnu/image/$t" "$out/$t"
    echo "$t: context ready"
done
