// composecheck loads a compose file with compose-go, the loader Docker Compose v2 itself uses:
// schema validation, interpolation, env files and secrets are checked as `docker compose config`
// would. It prints the normalised project as JSON. No Docker engine is needed.
//
//	composecheck -f docker-compose.yml [--env-file conf/local.env] [--profile jobs]
//	composecheck --dockerfile docker/spark.Dockerfile   (BuildKit's Dockerfile parser)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	file := flag.String("f", "docker-compose.yml", "compose file")
	envFile := flag.String("env-file", "", "env file used for interpolation")
	profiles := flag.String("profile", "", "comma-separated profiles to enable")
	dockerfile := flag.String("dockerfile", "", "check this Dockerfile instead of a compose file")
	flag.Parse()

	if *dockerfile != "" {
		if err := checkDockerfile(*dockerfile); err != nil {
			fmt.Fprintln(os.Stderr, "composecheck:", err)
			os.Exit(1)
		}
		return
	}

	options := []cli.ProjectOptionsFn{cli.WithName("spark-enrich"), cli.WithOsEnv}
	if *profiles != "" {
		options = append(options, cli.WithProfiles(strings.Split(*profiles, ",")))
	}
	if *envFile != "" {
		options = append(options, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	projectOptions, err := cli.NewProjectOptions([]string{*file}, options...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	project, err := projectOptions.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
