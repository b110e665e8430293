package main

import (
	"fmt"

	"github.com/example/go-gopath/greet"
)

func main() { fmt.Println(greet.Hello("world")) }
