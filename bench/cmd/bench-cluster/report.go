package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// measuredRun is one measured wrk run: its label (<topology>-<route>-r<round>),
// wrk's BENCH_RESULT fields and the snapshots around it.
type measuredRun struct {
	label, topology, route string
	wrk                    map[string]string
	before, after          snapshot
}

// runReport prints the table of every measured run in DIR: for each
// <label>.wrk.txt, the snapshots <label>.before.json and <label>.after.json.
func runReport(args []string, w io.Writer) error {
	if len(args) != 1 {
		return errors.New("report DIR")
	}
	files, err := filepath.Glob(filepath.Join(args[0], "*.wrk.txt"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.wrk.txt in %s", args[0])
	}
	var runs []measuredRun
	for _, f := range files {
		r, err := loadRun(f)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	// In the order they ran.
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].before.Taken.Before(runs[j].before.Taken) })

	fmt.Fprintf(w, "%-14s %-7s %8s %8s %6s | %-16s %8s %6s %6s %9s %10s %10s\n",
		"run", "route", "req/s", "charges", "errors", "master", "charges", "share", "CPU", "CPU us/ch", "evalsha/ch", "esha us/ch")
	failed := false
	for _, r := range runs {
		var total int64
		for i := range r.after.Masters {
			total += r.after.Masters[i].Charges - r.before.Masters[i].Charges
		}
		errs, _ := strconv.ParseInt(r.wrk["errors"], 10, 64)
		non2xx, _ := strconv.ParseInt(r.wrk["non2xx"], 10, 64)
		if errs+non2xx > 0 {
			failed = true
		}
		secs, _ := strconv.ParseFloat(r.wrk["duration_s"], 64)
		var cpuAll float64
		for i, a := range r.after.Masters {
			b := r.before.Masters[i]
			ch := a.Charges - b.Charges
			cpu := (a.CPUSeconds - b.CPUSeconds) * 1e6
			cpuAll += cpu
			head := fmt.Sprintf("%-14s %-7s %8s %8d %6d", r.topology+"-"+r.wrk["round"], r.route, r.wrk["rps"], total, errs+non2xx)
			if i > 0 {
				head = fmt.Sprintf("%-14s %-7s %8s %8s %6s", "", "", "", "", "")
			}
			fmt.Fprintf(w, "%s | %-16s %8d %5.1f%% %5.1f%% %9s %10s %10s\n", head, a.Addr, ch, pct(ch, total), busy(cpu, secs),
				per(cpu, ch), per(float64(a.EvalshaCalls-b.EvalshaCalls), ch), per(float64(a.EvalshaUsec-b.EvalshaUsec), ch))
		}
		fmt.Fprintf(w, "%-14s %-7s %8s %8s %6s | %-16s %8s %6s %5.1f%% %9s\n", "", "", "", "", "", "all masters", "", "", busy(cpuAll, secs), per(cpuAll, total))
	}
	fmt.Fprintf(w, "\nreq/s: wrk; charges: usage events the ledger recorded during the run (the reconciler caught up),\n")
	fmt.Fprintf(w, "per master: those of the projects whose shard it serves. CPU: the master's used_cpu_user+sys (INFO cpu)\n")
	fmt.Fprintf(w, "between the snapshots, as a share of one core over wrk's duration; CPU us/ch: the same per charge on it;\n")
	fmt.Fprintf(w, "evalsha/ch and esha us/ch: cmdstat_evalsha calls and usec (INFO commandstats, CONFIG RESETSTAT before\n")
	fmt.Fprintf(w, "the run) per charge on it. commandstats' usec is wall-clock time around each command: on a loaded\n")
	fmt.Fprintf(w, "machine it counts the time Redis was preempted mid-script, so it can exceed the CPU figure.\n")
	if failed {
		fmt.Fprintf(w, "ERRORS: some requests failed or were not 2xx; these numbers are not valid\n")
		return errors.New("some requests failed")
	}
	return nil
}

func loadRun(wrkFile string) (measuredRun, error) {
	label := strings.TrimSuffix(filepath.Base(wrkFile), ".wrk.txt")
	parts := strings.Split(label, "-")
	if len(parts) != 3 {
		return measuredRun{}, fmt.Errorf("%s: label %q is not <topology>-<route>-r<round>", wrkFile, label)
	}
	r := measuredRun{label: label, topology: parts[0], route: parts[1], wrk: map[string]string{"round": parts[2]}}
	text, err := os.ReadFile(wrkFile)
	if err != nil {
		return measuredRun{}, err
	}
	found := false
	for _, line := range strings.Split(string(text), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCH_RESULT "); ok {
			found = true
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				r.wrk[k] = v
			}
		}
	}
	if !found {
		return measuredRun{}, fmt.Errorf("%s: no BENCH_RESULT line", wrkFile)
	}
	dir := filepath.Dir(wrkFile)
	for _, s := range []struct {
		suffix string
		dst    *snapshot
	}{{".before.json", &r.before}, {".after.json", &r.after}} {
		b, err := os.ReadFile(filepath.Join(dir, label+s.suffix))
		if err != nil {
			return measuredRun{}, err
		}
		if err := json.Unmarshal(b, s.dst); err != nil {
			return measuredRun{}, fmt.Errorf("%s%s: %w", label, s.suffix, err)
		}
	}
	if len(r.before.Masters) != len(r.after.Masters) {
		return measuredRun{}, fmt.Errorf("%s: the snapshots list different masters", label)
	}
	for i := range r.before.Masters {
		if r.before.Masters[i].Addr != r.after.Masters[i].Addr {
			return measuredRun{}, fmt.Errorf("%s: the snapshots list different masters", label)
		}
	}
	return r, nil
}

func pct(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// busy is usec of CPU over secs of wall-clock time, in percent of a core.
func busy(usec, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return usec / (secs * 1e6) * 100
}

func per(v float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v/float64(n))
}
