// Package shout is vendored: it resolves only with the repository in GOPATH.
package shout

import "strings"

// Up shouts.
func Up(s string) string { return strings.ToUpper(s) }
