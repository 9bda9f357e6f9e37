//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// gatewayNames are the suite's gateways: three processes sharing one Redis
// and one Postgres, the load spread evenly over them.
var gatewayNames = []string{"gw-a", "gw-b", "gw-c"}

// gateway is one tollgate process. The gateways of the suite share Redis
// and Postgres; each keeps its name (the reconciler's consumer name and the
// X-Gateway header the upstream sees) across restarts, as an operator's
// would, so a restarted gateway re-reads its own pending events first.
type gateway struct {
	name string
	port int
	// adminPort is Caddy's admin endpoint, which `tollgate reload` talks to.
	adminPort int
	bin       string
	cfgPath   string
	logDir    string
	p         *proc
	starts    int
}

const (
	redisPrefix = "faults"
	// reservationLease is the priced route's lease: how long a reservation
	// whose gateway died waits for the sweeper. Short, so a cycle that
	// kills a gateway mid-stream does not wait long for its settlement.
	reservationLease = 12 * time.Second
	// creditLeaseLife and creditLeaseGrace are the leased route's credit
	// lease timings (defaults 30s and 2m): a killed gateway's leases are
	// ended by the sweeper at most their sum after they were taken. The
	// grace stays longer than the longest Redis outage a live gateway
	// rides out (redis-stall: 9s), so the sweeper never ends a lease its
	// gateway still uses.
	creditLeaseLife  = 10 * time.Second
	creditLeaseGrace = 20 * time.Second
)

func (g *gateway) base() string { return fmt.Sprintf("http://127.0.0.1:%d", g.port) }

// routes is what a configuration reload may change: the fixed-cost
// route's cost and whether the leased route admits from credit leases.
type routes struct {
	fixedCost int64 // credits a /f/ request costs
	leased    bool  // /l/ admits from credit leases (else it charges each request)
}

// baseRoutes is every gateway's configuration at start; reloadRoutes the
// one the reload fault switches a gateway to and back.
var (
	baseRoutes   = routes{fixedCost: 1, leased: true}
	reloadRoutes = routes{fixedCost: 2, leased: false}
)

func (r routes) String() string {
	leases := "off"
	if r.leased {
		leases = "on"
	}
	return fmt.Sprintf("/f/ costs %d, /l/ credit_leases %s", r.fixedCost, leases)
}

// writeConfig writes g's Caddyfile with the routes rt.
func (w *world) writeConfig(g *gateway, rt routes) error {
	return os.WriteFile(g.cfgPath, []byte(w.caddyfile(g, rt)), 0o600)
}

// caddyfile is the gateway's configuration: Caddy's admin endpoint on
// loopback (for `tollgate reload`), the admin API, a fixed-cost route
// (rt.fixedCost credits a request), a 1-credit route served from credit
// leases (unless rt says off), and a route priced by model, all proxied to
// the fake upstream with the gateway's name in X-Gateway.
func (w *world) caddyfile(g *gateway, rt routes) string {
	leases := "off"
	if rt.leased {
		leases = "on"
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	metering {
		redis %s
		postgres "%s&application_name=%s"
		key_pepper %s
		redis_prefix %s
		redis_shards %d
		reconciler_consumer %s
		sweep_interval 1s
		credit_lease_life %s
		credit_lease_sweep_grace %s
	}
}

http://127.0.0.1:%d {
	handle /admin/v1/* {
		metering_admin {
			token %s faults admin
		}
	}
	handle /f/* {
		metering %d {
			credit_leases off
		}
		reverse_proxy %s {
			header_up X-Gateway %s
		}
	}
	handle /l/* {
		metering {
			cost 1
			credit_leases %s
		}
		reverse_proxy %s {
			header_up X-Gateway %s
		}
	}
	handle /c/* {
		metering {
			price_by model
			max_output_tokens 256
			lease %s
		}
		reverse_proxy %s {
			header_up X-Gateway %s
		}
	}
}
`, g.adminPort, w.redis.url(), w.pg.url(pgDatabase), g.name, w.pepper, redisPrefix, *flagShards, g.name, creditLeaseLife, creditLeaseGrace,
		g.port, w.adminToken, rt.fixedCost, w.up.addr(), g.name, leases, w.up.addr(), g.name, reservationLease, w.up.addr(), g.name)
}

// buildGateway builds bin/tollgate from this tree into dir.
func buildGateway(dir string) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "tollgate")
	cmd := exec.Command(goCmd, "build", "-o", bin, "../cmd/tollgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ../cmd/tollgate: %v\n%s", err, out)
	}
	return bin, nil
}

// start runs the gateway and waits until it answers HTTP (any status: its
// health may be 503 while a store is down, which is not its fault).
func (g *gateway) start() error {
	g.starts++
	logPath := filepath.Join(g.logDir, fmt.Sprintf("%s.log", g.name))
	appendNote(logPath, fmt.Sprintf("=== start %d", g.starts))
	p, err := startProc(g.name, logPath, g.env(), nil, g.bin, "run", "--config", g.cfgPath, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	g.p = p
	client := &http.Client{Timeout: 2 * time.Second}
	return waitFor(g.name+" answers HTTP", 90*time.Second, func() (bool, string) {
		if p.exited() {
			return false, g.name + " exited: " + oneLine(p.tail(15))
		}
		resp, err := client.Get(g.base() + "/admin/v1/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
}

// env is the gateway's environment: its own home, so Caddy's data and
// autosaved configuration stay in the run's directory.
func (g *gateway) env() []string {
	home := filepath.Join(g.logDir, "..", "home-"+g.name)
	return append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
}

// up reports whether the gateway process runs.
func (g *gateway) up() bool { return g.p != nil && !g.p.exited() }

// reload runs `tollgate reload` for g's Caddyfile against its admin
// endpoint, as an operator would after editing it: Caddy provisions the new
// configuration, starts it, then stops and cleans up the old one. force
// reloads even an unchanged file (new module instances all the same).
func (g *gateway) reload(force bool) error {
	args := []string{"reload", "--config", g.cfgPath, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", g.adminPort)}
	if force {
		args = append(args, "--force")
	}
	cmd := exec.Command(g.bin, args...)
	cmd.Env = g.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: tollgate %s: %v: %s", g.name, strings.Join(args, " "), err, oneLine(string(out)))
	}
	return nil
}
