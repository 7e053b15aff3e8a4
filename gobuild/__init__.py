"""gobuild: reproducible builds of Go commands from the Go module proxy."""
