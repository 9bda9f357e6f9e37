// Package faults is Tollgate's fault-injection suite (`make test-faults`).
//
// Its tests are behind the build tag "faults", so `make test` does not run
// them. They start private processes on free loopback ports: a Redis with
// an append-only file, a PostgreSQL cluster, a fake upstream and three
// gateways built from this tree; put a load of concurrent clients through
// the gateways; inject faults (Redis killed, stalled or losing its last
// second, Postgres stopped, gateways and reconcilers killed, a gateway's
// configuration reloaded, a misbehaving upstream), change a price and
// revoke a user under load; and after each fault, once the system is
// quiet, check that
// every request was charged as the client's answer says it must be and
// that Redis, Postgres and the ledger agree. docs/faults.md describes it.
package faults
