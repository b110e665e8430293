package greet

import "testing"

func TestHello(t *testing.T) {
	if got := Hello("gopher"); got != "HELLO GOPHER" {
		t.Fatalf("Hello = %q", got)
	}
}
