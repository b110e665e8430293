#!/bin/sh
# Runs a repository's unit tests in its base image (golang:1.6.2, node:argon: old Debian, so
# POSIX sh only). The task passes:
#   LANGUAGE        go | node | other (ci/repos.yml's `language`, defaulted from base_image)
#   TEST_COMMAND    the repository's own test command (./coverage.sh, npm test, gulp test, godog)
#   SETUP           a command to run first instead of the default setup (optional)
#   GO_IMPORT_PATH  go: where the repository lives in GOPATH (github.com/ORG/REPO)
#   GODOG_PACKAGE   go: the godog command's package, installed with `go get` when missing
# A Go repository of that age has no modules: it must sit at $GOPATH/src/IMPORT_PATH for its
# own imports and vendor/ to resolve. A Node repository needs `npm install` first; `gulp` is
# the repository's own (node_modules/.bin) or gulp-cli installed for the run.
set -eu

: "${TEST_COMMAND:?TEST_COMMAND is not set (the repository's test command)}"
src=$(pwd)/source
[ -d "$src" ] || { echo "unit-tests: no input directory 'source'" >&2; exit 1; }

setup() {
    if [ -n "${SETUP:-}" ]; then
        echo "setup: $SETUP"
        sh -ec "$SETUP"
        return 0
    fi
    "$@"
}

case "${LANGUAGE:-other}" in
go)
    : "${GO_IMPORT_PATH:?GO_IMPORT_PATH is not set (github.com/ORG/REPO)}"
    GOPATH=${GOPATH:-/go}
    GO111MODULE=off
    PATH="$GOPATH/bin:$PATH"
    export GOPATH GO111MODULE PATH
    dest="$GOPATH/src/$GO_IMPORT_PATH"
    echo "placing the repository at $dest (GOPATH mode)"
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest"
    # A copy, not a symlink: the go tool of that age resolves vendor/ from the real path.
    cp -R "$src" "$dest"
    cd "$dest"
    setup true
    case "$TEST_COMMAND" in
    godog | "godog "*)
        if ! command -v godog >/dev/null 2>&1; then
            pkg=${GODOG_PACKAGE:-github.com/DATA-DOG/godog/cmd/godog}
            echo "installing godog: go get $pkg"
            go get "$pkg"
        fi
        ;;
    esac
    ;;
node)
    cd "$src"
    PATH="$src/node_modules/.bin:$PATH"
    export PATH
    install_deps() {
        if [ -f package.json ]; then
            echo "npm install"
            npm install --no-audit --no-fund
        fi
    }
    setup install_deps
    case "$TEST_COMMAND" in
    gulp | "gulp "*)
        if ! command -v gulp >/dev/null 2>&1; then
            echo "gulp is not in the repository's node_modules: installing gulp-cli for this run"
            npm install --no-save --no-audit --no-fund gulp-cli
        fi
        ;;
    esac
    ;;
*)
    cd "$src"
    setup true
    ;;
esac

echo "running: $TEST_COMMAND"
exec sh -ec "$TEST_COMMAND"
