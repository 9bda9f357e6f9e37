package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/admin/adminclient"
)

// runSeed creates -projects projects of -users users each through the
// admin API and writes the users' API keys to -out, one a line, in
// project-major order. The projects are created first, in order, so on a
// fresh database their ids are 1..N and spread evenly over the shards
// (project id modulo redis_shards).
func runSeed(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	admin := fs.String("admin", "", "admin API base URL, e.g. http://127.0.0.1:18093/admin/v1")
	projects := fs.Int("projects", 24, "projects to create")
	users := fs.Int("users", 4, "users per project")
	credits := fs.String("credits", "1000000000", "each user's initial credits")
	out := fs.String("out", "", "file to write the API keys to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := os.Getenv("TOLLGATE_ADMIN_TOKEN")
	if *admin == "" || *out == "" || token == "" {
		return errors.New("seed needs -admin, -out and TOLLGATE_ADMIN_TOKEN")
	}
	c := &adminclient.Client{BaseURL: *admin, Token: token, HTTP: &http.Client{Timeout: 20 * time.Second}}
	for p := 1; p <= *projects; p++ {
		if err := c.CreateProject(ctx, map[string]any{"name": fmt.Sprintf("bench-p%02d", p)}); err != nil {
			return fmt.Errorf("creating project bench-p%02d: %w", p, err)
		}
	}
	var keys []string
	for p := 1; p <= *projects; p++ {
		for u := 1; u <= *users; u++ {
			name := fmt.Sprintf("bench-p%02d-u%d", p, u)
			created, err := c.CreateUser(ctx, adminclient.CreateUserRequest{Username: name,
				Project: fmt.Sprintf("bench-p%02d", p), InitialCredits: *credits})
			if err != nil {
				return fmt.Errorf("creating user %s: %w", name, err)
			}
			if !strings.HasPrefix(created.APIKey, "tg_") {
				return fmt.Errorf("the admin API returned no API key for %s", name)
			}
			keys = append(keys, created.APIKey)
		}
	}
	return os.WriteFile(*out, []byte(strings.Join(keys, "\n")+"\n"), 0o600)
}
