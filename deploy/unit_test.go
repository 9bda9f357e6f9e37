package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// unitFile is a systemd unit as key -> values, per section.
type unitFile map[string]map[string][]string

// parseUnit reads the subset of systemd's syntax the unit uses: sections,
// key=value lines, comments. A continuation line or a line that is none of
// these fails the test: systemd would read it differently.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: continuation lines are not expected", path, n)
		case section != "" && strings.Contains(line, "="):
			k, v, _ := strings.Cut(line, "=")
			u[section][k] = append(u[section][k], v)
		default:
			t.Fatalf("%s:%d: not a section or key=value line: %q", path, n, line)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	require.Len(t, v, 1, "[%s] %s= is set exactly once", section, key)
	return v[0]
}

// TestServiceUnit checks that the unit keeps what docs/operations.md says
// it does, and agrees with deploy/Caddyfile.
func TestServiceUnit(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, "tollgate.service")
	for key, want := range map[string]string{
		"Type":                  "notify",
		"User":                  "tollgate",
		"Group":                 "tollgate",
		"EnvironmentFile":       "/etc/tollgate/tollgate.env",
		"Restart":               "on-failure",
		"NoNewPrivileges":       "true",
		"ProtectSystem":         "strict",
		"ProtectHome":           "true",
		"PrivateTmp":            "true",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"StateDirectory":        "tollgate",
		"LogsDirectory":         "tollgate",
		"RuntimeDirectory":      "tollgate",
		"KillSignal":            "SIGTERM",
	} {
		require.Equal(t, want, u.one(t, "Service", key), key)
	}
	require.Equal(t, "multi-user.target", u.one(t, "Install", "WantedBy"))

	nofile, err := strconv.Atoi(u.one(t, "Service", "LimitNOFILE"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, nofile, 65536)

	start := strings.Fields(u.one(t, "Service", "ExecStart"))
	reload := strings.Fields(u.one(t, "Service", "ExecReload"))
	require.Equal(t, []string{"/usr/local/bin/tollgate", "run"}, start[:2])
	require.Equal(t, []string{"/usr/local/bin/tollgate", "reload"}, reload[:2])
	require.Equal(t, flagValue(t, start, "--config"), flagValue(t, reload, "--config"), "reload reads the file the gateway runs")
	require.Equal(t, "/etc/tollgate/Caddyfile", flagValue(t, start, "--config"))

	// The directories the Caddyfile writes are the ones systemd makes
	// writable (everything else is read-only: ProtectSystem=strict).
	env := map[string]string{}
	for _, kv := range u["Service"]["Environment"] {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	require.Equal(t, "/run/tollgate", env["TOLLGATE_RUN_DIR"])
	require.Equal(t, "/var/log/tollgate", env["TOLLGATE_LOG_DIR"])
	require.True(t, strings.HasPrefix(env["XDG_DATA_HOME"], "/var/lib/tollgate/"), "Caddy's certificates under StateDirectory")

	// systemd waits for in-flight requests longer than Caddy lets them run.
	caddyfile, err := os.ReadFile("Caddyfile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*grace_period\s+(\S+)\s*$`).FindSubmatch(caddyfile)
	require.NotNil(t, m, "deploy/Caddyfile sets grace_period")
	grace, err := time.ParseDuration(string(m[1]))
	require.NoError(t, err)
	stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec"))
	require.NoError(t, err)
	require.Greater(t, stop, grace)
}

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("%v has no %s", args, name)
	return ""
}

// TestServiceUnitVerifies runs `systemd-analyze verify`, which reads the
// unit as systemd will and warns about every key it does not know or value
// it cannot parse. It insists the binary exists, so it checks a copy whose
// ExecStart and ExecReload name this test's own executable instead.
func TestServiceUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze checks deploy/tollgate.service: install systemd (Debian: apt-get install systemd)")
	self, err := os.Executable()
	require.NoError(t, err)
	src, err := os.ReadFile("tollgate.service")
	require.NoError(t, err)
	require.Contains(t, string(src), "/usr/local/bin/tollgate ")
	copyPath := filepath.Join(t.TempDir(), "tollgate.service")
	require.NoError(t, os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(src), "/usr/local/bin/tollgate ", self+" ")), 0o644))

	out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")

	// The check is real: a misspelt key is reported.
	bad := strings.Replace(string(src), "\nProtectSystem=strict\n", "\nProtectSystm=strict\n", 1)
	bad = strings.ReplaceAll(bad, "/usr/local/bin/tollgate ", self+" ")
	require.NoError(t, os.WriteFile(copyPath, []byte(bad), 0o644))
	out, _ = exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	require.Contains(t, string(out), "Unknown key 'ProtectSystm'")
}
