package main

import (
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// checkDockerfile parses a Dockerfile with BuildKit's parser (what `docker build` uses) and
// turns it into build stages, which rejects unknown instructions and malformed arguments.
// It prints each stage's base image and its instructions, one per line.
func checkDockerfile(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		return err
	}
	stages, _, err := instructions.Parse(result.AST, nil)
	if err != nil {
		return err
	}
	for _, stage := range stages {
		fmt.Printf("FROM %s\n", stage.BaseName)
		for _, command := range stage.Commands {
			fmt.Println(command)
		}
	}
	return nil
}
