// Package greet says hello, loudly (through a vendored package).
package greet

import "github.com/vendored/shout"

// Hello greets name.
func Hello(name string) string {
	return shout.Up("hello " + name)
}
