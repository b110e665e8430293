#!/bin/sh
# As the services' coverage scripts: test every package with coverage, build the command.
set -e
go test -cover ./greet/
go build -o /dev/null .
