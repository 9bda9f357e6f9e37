package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An INFO answer as Redis 7 writes it (CRLF lines, sections): the CPU
// counters and every command's usec count, evalsha's also on their own.
func TestParseInfo(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.000000\r\n\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=300,usec=4500,usec_per_call=15.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_xadd:calls=10,usec=100,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n"
	var m masterStats
	if err := parseInfo(info, &m); err != nil {
		t.Fatal(err)
	}
	if m.CPUSeconds != 3.75 || m.EvalshaCalls != 300 || m.EvalshaUsec != 4500 || m.AllUsec != 4600 {
		t.Fatalf("parsed %+v, want CPU 3.75 s (children not counted), evalsha 300 calls 4500 us, all 4600 us", m)
	}
	if err := parseInfo("# Commandstats\r\n", &m); err == nil {
		t.Fatal("an answer without the CPU counters was accepted")
	}
}

// The report divides each master's counter deltas by the charges of the
// projects it serves, and refuses a run with failed requests.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	write := func(name string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("3masters-fixed-r1.before.json", snapshot{Taken: at, Masters: []masterStats{
		{Addr: "a:1", CPUSeconds: 10, Charges: 100},
		{Addr: "b:2", CPUSeconds: 20, Charges: 200},
	}})
	// a: 3000 charges for 0.15 s of CPU (50 us each), 3300 evalsha calls;
	// b: 1000 charges for 0.1 s (100 us each).
	write("3masters-fixed-r1.after.json", snapshot{Taken: at.Add(20 * time.Second), Masters: []masterStats{
		{Addr: "a:1", CPUSeconds: 10.15, EvalshaCalls: 3300, EvalshaUsec: 60000, Charges: 3100},
		{Addr: "b:2", CPUSeconds: 20.1, EvalshaCalls: 1400, EvalshaUsec: 30000, Charges: 1200},
	}})
	wrk := "Running 15s test\nBENCH_RESULT label=3masters-fixed-r1 rps=266.7 p50_us=1 p99_us=2 mean_us=1.0 max_us=3 requests=4000 errors=0 non2xx=0 duration_s=15.00\n"
	if err := os.WriteFile(filepath.Join(dir, "3masters-fixed-r1.wrk.txt"), []byte(wrk), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := runReport([]string{dir}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(out.String(), "\n")
	want := [][]string{
		{"3masters-r1", "fixed", "266.7", "4000", "0", "a:1", "3000", "75.0%", "1.0%", "50.00", "1.10", "20.00"},
		{"b:2", "1000", "25.0%", "0.7%", "100.00", "1.40", "30.00"},
		{"all masters", "1.7%", "62.50"},
	}
	for i, w := range want {
		got := strings.Join(strings.Fields(strings.ReplaceAll(lines[1+i], "|", " ")), " ")
		if got != strings.Join(w, " ") {
			t.Errorf("line %d: got %q, want %q", i+1, got, strings.Join(w, " "))
		}
	}

	failed := strings.Replace(wrk, "non2xx=0", "non2xx=5", 1)
	if err := os.WriteFile(filepath.Join(dir, "3masters-fixed-r1.wrk.txt"), []byte(failed), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runReport([]string{dir}, &out); err == nil || !strings.Contains(out.String(), "ERRORS") {
		t.Fatalf("a run with non-2xx answers was reported as valid:\n%s", out.String())
	}
}
