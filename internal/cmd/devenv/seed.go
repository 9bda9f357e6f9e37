package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/admin/adminclient"
)

// demoProject is the project `make run` creates: 100 credits a day per
// member, and a shared pool (empty).
const demoProject = `{"allowance":{"amount":100,"period":"daily","timezone":"UTC"},"pool":{"enabled":true,"balance":0}}`

// demoPrice prices the demo upstream's model, so the metered /v1 routes
// answer (a model without a price gets 400 unknown_model): credits per
// million tokens, per character of speech, per second of audio, per image.
const demoPrice = `{"input_per_million":1,"output_per_million":2,"per_character":0.00001,"per_second":0.0001,"per_image":0.02}`

// seedSpec says what seed-demo creates.
type seedSpec struct {
	Project        string
	User           string
	InitialCredits string // exact decimal, as the API takes it
	Model          string
}

// runSeedDemo creates the demo project, user and model price through the
// admin API and prints the user's API key alone on stdout. It can run
// again: an existing project is kept, an existing user gets a new key (the
// old one is shown nowhere, so it could not be printed), the price is put
// again.
func runSeedDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed-demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	baseURL := fs.String("url", "", "admin API base URL (default $TOLLGATE_ADMIN_URL, else "+adminclient.DefaultURL+")")
	var spec seedSpec
	fs.StringVar(&spec.Project, "project", "demo", "project to create")
	fs.StringVar(&spec.User, "user", "demo-user", "user to create in it")
	fs.StringVar(&spec.InitialCredits, "initial-credits", "1000", "the user's initial credits")
	fs.StringVar(&spec.Model, "model", "demo", "model to price")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("seed-demo: %v", err)
	}
	if fs.NArg() != 0 {
		return usageErrorf("seed-demo takes flags only, not %s", printable(fs.Arg(0)))
	}
	c := &adminclient.Client{BaseURL: *baseURL, Token: os.Getenv("TOLLGATE_ADMIN_TOKEN"),
		HTTP: &http.Client{Timeout: 20 * time.Second}}
	if c.BaseURL == "" {
		c.BaseURL = os.Getenv("TOLLGATE_ADMIN_URL")
	}
	if c.BaseURL == "" {
		c.BaseURL = adminclient.DefaultURL
	}
	if c.Token == "" {
		// Not a flag: a token in the command line is visible to every
		// user of the machine (ps).
		return errors.New("seed-demo: set TOLLGATE_ADMIN_TOKEN to the admin token")
	}
	key, err := seedDemo(ctx, c, spec, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}

// seedDemo does the work of seed-demo and returns the user's key.
func seedDemo(ctx context.Context, c *adminclient.Client, spec seedSpec, log io.Writer) (string, error) {
	project := map[string]any{"name": spec.Project}
	if err := json.Unmarshal([]byte(demoProject), &project); err != nil {
		return "", err
	}
	project["name"] = spec.Project
	switch err := c.CreateProject(ctx, project); {
	case err == nil:
		fmt.Fprintf(log, "seed-demo: created project %s\n", printable(spec.Project))
	case isStatus(err, http.StatusConflict):
		fmt.Fprintf(log, "seed-demo: project %s exists\n", printable(spec.Project))
	default:
		return "", fmt.Errorf("creating project %s: %w", printable(spec.Project), err)
	}

	var key string
	created, err := c.CreateUser(ctx, adminclient.CreateUserRequest{Username: spec.User, Project: spec.Project, InitialCredits: spec.InitialCredits})
	switch {
	case err == nil:
		key = created.APIKey
		fmt.Fprintf(log, "seed-demo: created user %s in project %s with %s credits\n", printable(spec.User), printable(spec.Project), spec.InitialCredits)
	case isStatus(err, http.StatusConflict):
		if key, err = c.RotateKey(ctx, spec.User); err != nil {
			return "", fmt.Errorf("user %s exists, and giving it a new key failed: %w", printable(spec.User), err)
		}
		fmt.Fprintf(log, "seed-demo: user %s exists; gave it a new key\n", printable(spec.User))
	default:
		return "", fmt.Errorf("creating user %s: %w", printable(spec.User), err)
	}
	if !strings.HasPrefix(key, "tg_") {
		return "", fmt.Errorf("the admin API returned no API key for %s (got %q)", printable(spec.User), key)
	}

	if err := c.PutPrice(ctx, spec.Model, json.RawMessage(demoPrice)); err != nil {
		return "", fmt.Errorf("setting the price of model %s: %w", printable(spec.Model), err)
	}
	fmt.Fprintf(log, "seed-demo: priced model %s\n", printable(spec.Model))
	return key, nil
}

func isStatus(err error, status int) bool {
	var apiErr *adminclient.Error
	return errors.As(err, &apiErr) && apiErr.Status == status
}
