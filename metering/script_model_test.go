package metering_test

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A Go model of the money scripts, written from the rules in
// docs/architecture.md rather than from the Lua: the checks in their
// order, the lazy refill and monthly grant, what the pool can give, the
// waterfall through the allowed buckets, and what each script then
// writes. script_model_test.go's randomized test requires every script to
// agree with it on every answer and every write, so a script whose
// waterfall, refill, grant or pool arithmetic breaks fails there.

// modelOp is one script call as the model sees it.
type modelOp struct {
	script  string // "fixed", "tracked", "reserve", "peek", "refresh", "adjust"
	amount  int64  // cost, reservation or signed adjustment
	pstart  int64
	order   string // reserve: bucket letters; fixed and tracked: "apwr"
	field   string // adjust: "aw" or "pr"
	version string // reserve: the estimate's price version ("" no check)
	stored  string // reserve: the price version key ("" absent)
	marker  bool   // tracked, reserve: the operation's record exists
}

// modelWorld is the model's copy of what the scripts read and write.
type modelWorld struct {
	snap   snapshot
	answer []int64
}

func atoi(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return v
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// runModel is what the script op does to the state user, project (nil:
// not loaded). The record starts as the cancel's marker when op.marker.
func runModel(user, project map[string]string, op modelOp) modelWorld {
	u, p := copyMap(user), copyMap(project)
	w := modelWorld{snap: snapshot{User: u, Project: p, Record: map[string]string{}, Events: []map[string]any{},
		InFlight: []redis.Z{}, Leases: []redis.Z{}}}
	if op.marker {
		w.snap.Record["x"] = "1"
	}
	status := func(s int64) modelWorld { w.answer = []int64{s}; return w }
	// refuse answers without writing anything.
	refuse := func(answer ...int64) modelWorld {
		w.snap.User, w.snap.Project, w.answer = copyMap(user), copyMap(project), answer
		return w
	}
	checksKey := op.script == "fixed" || op.script == "tracked" || op.script == "reserve"

	if _, ok := u["del"]; ok {
		return status(-7)
	}
	_, hasA := u["a"]
	_, hasV := u["v"]
	_, hasPt := u["pt"]
	if !hasA || !hasV || !hasPt {
		return status(-1)
	}
	if checksKey {
		if u["kh"] != scriptKeyHash || u["v"] != "5" {
			return status(-2)
		}
		if exp := atoi(u["exp"]); u["st"] != "1" || (exp > 0 && scriptNowMs >= exp) {
			return status(-3)
		}
		if op.script != "fixed" && op.marker {
			return status(-6)
		}
		stored := op.stored
		if stored == "" {
			stored = "0"
		}
		if op.script == "reserve" && op.version != "" && stored != op.version {
			return status(-5)
		}
	}
	pid := u["p"]
	amt, per, poolOn, pb, pl, pname := int64(0), "none", false, int64(0), int64(-1), ""
	if pid != "0" {
		if project == nil || p["pb"] == "" {
			return status(-4)
		}
		if checksKey && p["v"] != "9" {
			return status(-2)
		}
		amt, per, pname = atoi(p["amt"]), p["per"], p["n"]
		poolOn, pb, pl = p["pe"] == "1", atoi(p["pb"]), atoi(p["pl"])
	}

	alw, ap, pu := atoi(u["a"]), atoi(u["ap"]), atoi(u["pu"])
	aw, pr, gm, mg := atoi(u["aw"]), atoi(u["pr"]), atoi(u["gm"]), atoi(u["mg"])
	// The allowance refills when the project has a period and it rolled.
	refilled := pid != "0" && per != "none" && ap < op.pstart
	refillA, refillPu := amt-alw, -pu
	if refilled {
		alw, pu, ap = amt, 0, op.pstart
	}
	// A partner is paid mg for each month begun since gm, never past MAX.
	granted, grant := u["pt"] == "1" && mg > 0 && gm < scriptMonth, int64(0)
	if granted {
		months := int64(scriptMonth) - gm
		if gm <= 0 {
			months = 1
		}
		grant = min(mg*months, scriptMax-pr) // mg*months < 2^63 in these states
		pr, gm = pr+grant, scriptMonth
	}
	pool := int64(0)
	if poolOn {
		pool = pb
		if pl >= 0 && pl-pu < pool {
			pool = pl - pu
		}
		pool = max(pool, 0)
	}

	if op.script == "peek" {
		return refuse(0, min(alw+pool+aw+pr, scriptMax), alw, pool, aw, pr, pb, pu, gm) // writes nothing
	}

	head := func(id, kind string) map[string]any {
		e := map[string]any{"id": id, "k": kind, "t": num(scriptNowMs), "u": num(scriptUserID), "un": u["n"]}
		if pid != "0" {
			e["p"], e["pn"] = pid, pname
		}
		return e
	}
	put := func(e map[string]any, field string, v int64) {
		if v != 0 {
			e[field] = num(v)
		}
	}
	text := func(e map[string]any, field, v string) {
		if v != "" {
			e[field] = v
		}
	}
	events := []map[string]any{}
	if refilled {
		e := head("evt1:r", "refill")
		put(e, "a", refillA)
		put(e, "pu", refillPu)
		put(e, "ap", op.pstart)
		events = append(events, e)
	}
	if grant > 0 {
		e := head("evt1:g", "grant")
		put(e, "pr", grant)
		put(e, "gm", scriptMonth)
		events = append(events, e)
	}
	save := func() {
		u["a"], u["ap"], u["pu"], u["aw"], u["pr"], u["gm"] = num(alw), num(ap), num(pu), num(aw), num(pr), num(gm)
	}

	switch op.script {
	case "refresh":
		save()
		w.snap.Events = events
		refills := int64(0)
		if refilled {
			refills = 1
		}
		if !refilled {
			refillA, refillPu = 0, 0
		}
		w.answer = []int64{0, refills, refillA, refillPu, op.pstart, grant, scriptMonth}
		return w
	case "adjust":
		bal := aw
		if op.field == "pr" {
			bal = pr
		}
		next := bal + op.amount
		if next < 0 {
			return refuse(1, bal)
		}
		if next > scriptMax {
			return refuse(2, bal)
		}
		if op.field == "pr" {
			pr = next
		} else {
			aw = next
		}
		save()
		e := head("evt1", "adjust")
		put(e, op.field, op.amount)
		text(e, "ac", "admin")
		text(e, "no", "why")
		w.snap.Events = append(events, e)
		w.answer = []int64{0, next}
		return w
	}

	// fixed, tracked, reserve: the waterfall, all or nothing.
	avail := map[byte]int64{'a': alw, 'p': pool, 'w': aw, 'r': pr}
	reach := int64(0)
	for i := 0; i < len(op.order); i++ {
		reach += avail[op.order[i]]
	}
	reach = min(reach, scriptMax)
	if op.amount > reach {
		return refuse(1, reach)
	}
	got, rest := map[byte]int64{}, op.amount
	for i := 0; i < len(op.order); i++ {
		b := op.order[i]
		got[b] = min(rest, avail[b])
		rest -= got[b]
	}
	ta, tp, tw, tr := got['a'], got['p'], got['w'], got['r']
	alw, pu, aw, pr = alw-ta, pu+tp, aw-tw, pr-tr
	save()
	if tp > 0 {
		p["pb"] = num(pb - tp)
	}
	kind := "usage"
	if op.script == "reserve" {
		kind = "hold"
	}
	e := head("evt1", kind)
	if kind == "usage" {
		put(e, "c", op.amount)
	}
	put(e, "a", -ta)
	put(e, "pl", -tp)
	put(e, "pu", tp)
	put(e, "aw", -tw)
	put(e, "pr", -tr)
	if kind == "hold" {
		put(e, "rs", op.amount)
		text(e, "m", "m1")
	}
	text(e, "rq", "GET /x")
	w.snap.Events = append(events, e)
	deadline := float64(scriptNowMs + 60_000)
	switch op.script {
	case "fixed":
		w.answer = []int64{0, reach - op.amount, ta, tp, tw, tr}
	case "tracked":
		member := strings.Join([]string{"evt1", pid, num(ap), num(ta), num(tp), num(tw), num(tr)}, "|")
		w.snap.InFlight = []redis.Z{{Score: deadline, Member: member}}
		w.answer = []int64{0, reach - op.amount, ta, tp, tw, tr, ap}
	case "reserve":
		w.snap.Record = map[string]string{"u": num(scriptUserID), "p": pid, "un": u["n"], "pn": pname,
			"ap": num(ap), "ae": num(2000_000 + 86_400_000), "o": op.order, "rs": num(op.amount),
			"a": num(ta), "pl": num(tp), "w": num(tw), "r": num(tr), "m": "m1", "rq": "GET /x"}
		w.snap.InFlight = []redis.Z{{Score: deadline, Member: "evt1"}}
		w.snap.Leases = []redis.Z{{Score: deadline, Member: "evt1"}}
		w.answer = []int64{0, reach - op.amount, ta, tp, tw, tr}
	}
	return w
}
