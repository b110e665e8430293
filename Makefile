# The two commands a new user runs: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Static binaries for FROM-scratch images: the gnu target with crt-static (the musl target
# cannot be installed on our machines). The flag is passed only with --target, so build
# scripts and proc macros stay dynamic.
TARGET := x86_64-unknown-linux-gnu
IMAGE_BINS := target/$(TARGET)/image
# Every resource built as an image. example-resource is built and tested like the others (it
# proves the kit end to end) but never published (pipeline::publish::TYPES leaves it out).
RESOURCES := example-resource gcr-image github-promote-pr k8s-deploy acceptance-run

.PHONY: all build lint test unit images image-bins clean pipeline demo demo-prod demo-bad-release demo-down demo-bin publish

all: build

build:
	$(CARGO) build --workspace --all-targets --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

image-bins:
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	  $(CARGO) build --locked --profile image --target $(TARGET) $(addprefix -p ,$(RESOURCES)) -p acceptance-suite -p sample-system

# The resource images, the sample acceptance suite's image (acceptance-run's docker and
# kubernetes runners) and the demo's sample system (gateway and two services).
images: image-bins
	@for r in $(RESOURCES); do images/build.sh $$r $(IMAGE_BINS)/$$r || exit 1; done
	@images/build-suite.sh $(IMAGE_BINS)/acceptance-suite
	@images/build-samples.sh $(IMAGE_BINS)/sample-service

# What the machine needs, checked (and installed as root) before anything compiles.
.PHONY: preflight-test preflight-demo
preflight-test:
	@ci/preflight.sh test
preflight-demo:
	@ci/preflight.sh demo

# Unit and in-process tests, the built binaries, and the images under Docker.
test: preflight-test
	@$(MAKE) --no-print-directory lint build images
	$(CARGO) nextest run --workspace --locked --no-fail-fast

unit:
	$(CARGO) nextest run --workspace --locked

clean:
	$(CARGO) clean

# The whole pipeline, locally, for the sample system in examples/: the registry and the
# Kubernetes (pods in Docker) and GitHub fakes on loopback, our resource images run as
# Concourse runs them. Stops before the manual production job: `make demo-prod` runs it,
# `make demo-down` stops the environment (it also stops by itself after an hour).
# The demo binary is built with the images' profile and target, so a fresh machine compiles
# the dependency tree once.
DEMO := $(IMAGE_BINS)/demo
demo-bin:
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	  $(CARGO) build --locked -q --profile image --target $(TARGET) -p demo

demo: preflight-demo
	@$(MAKE) --no-print-directory images demo-bin
	$(DEMO) run

demo-prod: demo-bin
	$(DEMO) prod

# A broken release of the sample user service (/users/2 answers 500, which the acceptance suite
# does not cover) after a good one reached production: the production canary stops it.
demo-bad-release: demo
	$(DEMO) prod
	$(DEMO) bad-release

demo-down: demo-bin
	$(DEMO) down

# Benchmarks print ratios against a peer measured in the same run; they assert no timings.
.PHONY: bench
bench: image-bins
	$(CARGO) bench --locked -p e2e --bench coldstart
	$(CARGO) bench --locked -p e2e --bench registry
	$(CARGO) bench --locked -p e2e --bench github
	$(CARGO) bench --locked -p e2e --bench rollout

# Publishes the resource types' images where the pipeline pulls them, with our own gcr-image:
#   make publish REGISTRY=us.gcr.io/microservices-kube TAG=0.2.0
# Credentials from the environment: GOOGLE_CLOUD_AUTH_KEY (a service-account key), or
# REGISTRY_USERNAME with REGISTRY_PASSWORD. Prints each REGISTRY/<type>:TAG@digest.
REGISTRY ?= us.gcr.io/microservices-kube
TAG ?=
publish: images
	@test -n "$(TAG)" || { echo "make publish: set TAG, e.g. make publish TAG=0.2.0" >&2; exit 2; }
	$(CARGO) run --locked -q -p pipeline -- publish --registry $(REGISTRY) --tag $(TAG) --gcr-image $(IMAGE_BINS)/gcr-image

# Renders ci/pipeline.yml and ci/k8s/services.yml from ci/repos.yml, then checks the pipeline.
pipeline:
	$(CARGO) run --locked -q -p pipeline -- render
	$(CARGO) run --locked -q -p pipeline -- check ci/pipeline.yml
