package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/admin"
	"github.com/tollgate/tollgate/admin/adminclient"
	"github.com/tollgate/tollgate/metering"
)

// The admin helper commands talk to a running gateway's admin API over
// HTTP (adminclient); they never open Redis or Postgres themselves, so the
// API's checks, audit log and all-or-nothing rules apply to them too.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "users",
		Usage: "import|export|create ...",
		Short: "Imports, exports and creates Tollgate users through the admin API",
		Long: `Manages users through a running gateway's admin API.

  users import FILE [--dry-run]      create every user of a CSV file, or none
  users export [--project P ...]     write the users as CSV to stdout (or --output)
  users create NAME [--project P] [--initial-credits N] [--purchased N]
                    [--monthly-grant N] [--partner]

The API is found at --url or $TOLLGATE_ADMIN_URL (default ` + adminclient.DefaultURL + `)
and called with --token or $TOLLGATE_ADMIN_TOKEN (prefer the variable: a
flag is visible to other local users in the process list).`,
		CobraFunc: configureUsersCommand,
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "usage",
		Usage: "[--user U] [--project P] [--model M] [--from D] [--to D] [--group-by day|user|project|model|none] [--format json|csv]",
		Short: "Prints a usage report from the admin API",
		Long: `Prints GET /usage of a running gateway's admin API as the server sends it
(JSON or CSV). --from and --to are dates YYYY-MM-DD, both included
(--from 2026-11-30 --to 2026-11-30 is that one day), or RFC 3339 times
(--to excluded); the default period is the current month. --url/--token as
for the users command.`,
		CobraFunc: configureUsageCommand,
	})
}

// progressMinBytes: uploads at least this large print progress lines.
const progressMinBytes = 256 << 10

// adminFlags are the connection flags every admin command takes.
type adminFlags struct {
	url, token string
}

func (f *adminFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.url, "url", "", "admin API base URL (default $TOLLGATE_ADMIN_URL, else "+adminclient.DefaultURL+")")
	fs.StringVar(&f.token, "token", "", "admin API token (default $TOLLGATE_ADMIN_TOKEN)")
}

func (f *adminFlags) client() (*adminclient.Client, error) {
	c := &adminclient.Client{BaseURL: f.url, Token: f.token}
	if c.BaseURL == "" {
		c.BaseURL = os.Getenv("TOLLGATE_ADMIN_URL")
	}
	if c.BaseURL == "" {
		c.BaseURL = adminclient.DefaultURL
	}
	if c.Token == "" {
		c.Token = os.Getenv("TOLLGATE_ADMIN_TOKEN")
	}
	if c.Token == "" {
		return nil, errors.New("no admin token: set TOLLGATE_ADMIN_TOKEN or pass --token")
	}
	return c, nil
}

// commandContext ends on Ctrl-C, so an upload or export stops cleanly.
// runE is a command body with what every admin command needs: the API
// client from the flags and environment, and a context that Ctrl-C ends.
func (f *adminFlags) runE(body func(ctx context.Context, c *adminclient.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		ctx, cancel := commandContext(cmd)
		defer cancel()
		return body(ctx, c, cmd, args)
	}
}

func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt)
}

func configureUsersCommand(cmd *cobra.Command) {
	var flags adminFlags
	flags.register(cmd.PersistentFlags())
	cmd.AddCommand(usersImportCommand(&flags), usersExportCommand(&flags), usersCreateCommand(&flags))
}

func usersImportCommand(flags *adminFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Creates every user of a CSV file, or none ('-' reads stdin)",
		Long: `Uploads a CSV file with the header username,project,initial_credits (and
optionally purchased, monthly_grant, partner, status, key_expires_at,
grants_paid_through), or a file written by "users export", to POST
/users/import. Separators ',', ';' and tab are read from the header. Either
every row is created or none is; the problems of every bad row are printed.
On success the new API keys are written to stdout as CSV (username,api_key):
they are shown this once, so redirect them to a safe place. --dry-run only
checks: it prints each row's status and what it would write as CSV
(line,username,status,error,project,initial_credits,...) and the totals on
stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: flags.runE(func(ctx context.Context, c *adminclient.Client, cmd *cobra.Command, args []string) error {
			return runUsersImport(ctx, c, args[0], dryRun, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check every row and write nothing")
	return cmd
}

func runUsersImport(ctx context.Context, c *adminclient.Client, file string, dryRun bool, stdin io.Reader, stdout, stderr io.Writer) error {
	body, size := stdin, int64(-1)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		body, size = f, st.Size()
	}
	var progress func(sent, total int64)
	if size >= progressMinBytes {
		progress = uploadProgress(stderr, file)
	}
	res, err := c.ImportUsers(ctx, body, size, dryRun, progress)
	if res != nil {
		for _, row := range res.Rows {
			if row.Status != "ok" {
				fmt.Fprintf(stderr, "line %d (%s): %s\n", row.Line, row.Username, row.Error)
			}
		}
	}
	if err != nil {
		return err
	}
	out := admin.NewCSVWriter(stdout) // cells are neutralised for spreadsheets
	if dryRun {
		out.Write(previewHeader)
		for _, row := range res.Rows {
			out.Write(previewRecord(row))
		}
		out.Flush()
		printImportTotals(stderr, res.Totals)
		if bad := res.Failed(); bad > 0 {
			return fmt.Errorf("dry run: %s; nothing was written", metering.RowsInvalid(bad, len(res.Rows)))
		}
		fmt.Fprintf(stderr, "dry run: all %d rows are valid; nothing was written\n", len(res.Rows))
		return out.Error()
	}
	out.Write([]string{"username", "api_key"})
	for _, row := range res.Rows {
		out.Write([]string{row.Username, row.APIKey})
	}
	out.Flush()
	if err := out.Error(); err != nil {
		return fmt.Errorf("%d users were created, but writing their keys failed: %w", res.Created, err)
	}
	fmt.Fprintf(stderr, "created %d users; their API keys (on stdout) are shown only this once\n", res.Created)
	return nil
}

// previewHeader: a dry run's CSV, each row's status and then what a valid
// row writes.
var previewHeader = []string{"line", "username", "status", "error", "project", "initial_credits", "purchased",
	"monthly_grant", "partner", "user_status", "key_expires_at", "username_in_file"}

func previewRecord(row adminclient.ImportRow) []string {
	rec := []string{fmt.Sprint(row.Line), row.Username, row.Status, row.Error, "", "", "", "", "", "", "", row.UsernameInFile}
	if row.Status == "ok" {
		if row.Project != nil {
			rec[4] = *row.Project
		}
		rec[5], rec[6], rec[7] = string(row.InitialCredits), string(row.Purchased), string(row.MonthlyGrant)
		if row.Partner != nil {
			rec[8] = fmt.Sprint(*row.Partner)
		}
		rec[9] = row.UserStatus
		if row.KeyExpiresAt != nil {
			rec[10] = *row.KeyExpiresAt
		}
	}
	return rec
}

// printImportTotals says what the valid rows add up to, overall and per
// project.
func printImportTotals(w io.Writer, t adminclient.ImportTotals) {
	fmt.Fprintf(w, "valid rows: %s (%s, %d inactive): initial credits %s, purchased %s, monthly grant %s\n",
		metering.Plural(int64(t.Users), "user", "users"), metering.Plural(int64(t.Partners), "partner", "partners"),
		t.Inactive, t.InitialCredits, t.Purchased, t.MonthlyGrant)
	for _, p := range t.Projects {
		name := "(no project)"
		if p.Project != nil {
			name = "project " + *p.Project
		}
		fmt.Fprintf(w, "  %s: %s, initial credits %s, purchased %s, monthly grant %s\n", name,
			metering.Plural(int64(p.Users), "user", "users"), p.InitialCredits, p.Purchased, p.MonthlyGrant)
	}
}

// uploadProgress prints a line each time another tenth of the file is
// sent, then one while the server works.
func uploadProgress(w io.Writer, name string) func(sent, total int64) {
	next := int64(1)
	return func(sent, total int64) {
		if total <= 0 {
			return
		}
		for next <= 10 && sent*10 >= total*next {
			fmt.Fprintf(w, "uploading %s: %d%% (%d of %d bytes)\n", name, next*10, sent, total)
			if next == 10 {
				fmt.Fprintln(w, "uploaded; waiting for the server to check and create the users…")
			}
			next++
		}
	}
}

func usersExportCommand(flags *adminFlags) *cobra.Command {
	var filter adminclient.UserFilter
	var output string
	cmd := &cobra.Command{
		Use:   "export [--project P] [--search S] [--status S] [--key-status S] [--key-older-than 90d] [--sort S] [--output FILE]",
		Short: "Writes the users as CSV (GET /users/export)",
		Args:  cobra.NoArgs,
		RunE: flags.runE(func(ctx context.Context, c *adminclient.Client, cmd *cobra.Command, _ []string) error {
			return runUsersExport(ctx, c, filter, output, cmd.OutOrStdout())
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&filter.Project, "project", "", "only this project's users (none: users without a project)")
	fs.StringVar(&filter.Search, "search", "", "only usernames containing this")
	fs.StringVar(&filter.Status, "status", "", "active or inactive")
	fs.StringVar(&filter.KeyStatus, "key-status", "", "active, expired or revoked: the key's status now")
	fs.StringVar(&filter.KeyOlderThan, "key-older-than", "", "only keys made more than this many days ago, such as 90d")
	fs.StringVar(&filter.Sort, "sort", "", "username (default), -credits or -activity")
	fs.StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func runUsersExport(ctx context.Context, c *adminclient.Client, f adminclient.UserFilter, output string, stdout io.Writer) error {
	if output == "" {
		return c.ExportUsers(ctx, f, stdout)
	}
	file, err := os.Create(output)
	if err != nil {
		return err
	}
	err = c.ExportUsers(ctx, f, file)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(output) // a partial export must not pass for a complete one
	}
	return err
}

func usersCreateCommand(flags *adminFlags) *cobra.Command {
	var req adminclient.CreateUserRequest
	cmd := &cobra.Command{
		Use:   "create NAME [--project P] [--initial-credits N] [--purchased N] [--monthly-grant N] [--partner]",
		Short: "Creates one user and prints it with its API key (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: flags.runE(func(ctx context.Context, c *adminclient.Client, cmd *cobra.Command, args []string) error {
			req.Username = args[0]
			return runUsersCreate(ctx, c, req, cmd.OutOrStdout())
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&req.Project, "project", "", "project name")
	fs.StringVar(&req.InitialCredits, "initial-credits", "", "awarded credits to start with")
	fs.StringVar(&req.Purchased, "purchased", "", "purchased credits to start with")
	fs.StringVar(&req.MonthlyGrant, "monthly-grant", "", "credits added to purchased on the 1st of each month")
	fs.BoolVar(&req.Partner, "partner", false, "mark the user as a partner")
	return cmd
}

func runUsersCreate(ctx context.Context, c *adminclient.Client, req adminclient.CreateUserRequest, stdout io.Writer) error {
	created, err := c.CreateUser(ctx, req)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(created)
}

func configureUsageCommand(cmd *cobra.Command) {
	var flags adminFlags
	flags.register(cmd.Flags())
	params := map[string]*string{}
	for _, p := range []struct{ flag, query, help string }{
		{"user", "user", "only this user"},
		{"project", "project", "only this project"},
		{"model", "model", "only this model"},
		{"from", "from", "first day (YYYY-MM-DD, or an RFC 3339 time)"},
		{"to", "to", "last day, included (YYYY-MM-DD), or an RFC 3339 time, excluded"},
		{"group-by", "group_by", "day, user, project, model or none"},
		{"format", "format", "json or csv"},
	} {
		params[p.query] = cmd.Flags().String(p.flag, "", p.help)
	}
	cmd.Args = cobra.NoArgs
	cmd.RunE = flags.runE(func(ctx context.Context, c *adminclient.Client, cmd *cobra.Command, _ []string) error {
		q := url.Values{}
		for name, v := range params {
			if *v != "" {
				q.Set(name, *v)
			}
		}
		return c.Usage(ctx, q, cmd.OutOrStdout())
	})
}
