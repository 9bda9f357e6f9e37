package metering

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Variable cost: Reserve takes an estimate before the request goes
// upstream (reserve.lua: a hold plus a reservation record and a lease),
// Settle takes the real cost after it (settle.lua). A gateway that dies in
// between leaves a lease the Sweeper settles.

// UnknownModelPolicy says what to do with a model that has no price:
// Reject it, or charge it at Default (whose Model may be "").
type UnknownModelPolicy struct {
	Reject  bool
	Default Price
}

// ReserveRequest is one variable-cost request about to go upstream.
type ReserveRequest struct {
	Key      string
	Model    string   // "" when the route has no model (cost_header mode)
	Estimate Units    // estimated usage; priced with PriceFor
	Fixed    *Credits // when set, reserve exactly this, ignoring Model/Estimate
	Unknown  UnknownModelPolicy
	Buckets  BucketOrder
	Request  string        // "POST /v1/chat/completions"
	Lease    time.Duration // how long before the sweeper may settle it; 0: DefaultLease
}

// DefaultLease is the lease of a reservation that names none.
const DefaultLease = 15 * time.Minute

// ReserveStatus is the outcome of a reservation: Reserved, Insufficient
// (the allowed buckets cannot cover the estimate; nothing taken),
// KeyRefused, or UnknownModel. It is ChargeStatus, so the names the two
// share mean the same and handlers answer them the same way.
type ReserveStatus = ChargeStatus

const (
	// Reserved: the estimate was taken; Settle must follow.
	Reserved = Charged
	// UnknownModel: no price for the model and the policy rejects it.
	UnknownModel = KeyRefused + 1
)

// Reservation is an estimate held for one request.
type Reservation struct {
	ID        string // the hold event's id
	Status    ReserveStatus
	UserID    int64
	Username  string
	Project   string
	Model     string
	Price     Price // the price the estimate used; Settle uses the same
	Reserved  Credits
	Taken     Split
	Remaining Credits // effective credits (of the allowed buckets) after, or when insufficient

	userKey, projectKey, flightKey string
	projectID                      int64
	shard                          *ShardKeys
}

// Reserve authenticates the key, prices the estimate and takes it through
// the allowed buckets in one atomic script call, or takes nothing.
// Errors wrapping ErrUnavailable mean Redis could not be reached: fail closed.
func (e *Engine) Reserve(ctx context.Context, r ReserveRequest) (*Reservation, error) {
	if !WellFormedKey(r.Key) {
		return &Reservation{Status: KeyRefused}, nil
	}
	order, err := r.Buckets.letters()
	if err != nil {
		return nil, err
	}
	if r.Lease < 0 {
		return nil, invalid("lease", "must not be negative")
	}
	if r.Lease == 0 {
		r.Lease = DefaultLease
	}
	h := e.hasher.Hash(r.Key)
	var ent *userEntry
	// As for charges: every retry follows a repair; one more allows for a
	// price change between pricing and the script.
	for attempt := 0; attempt < 4; attempt++ {
		// The key first: an unknown client learns nothing about models.
		if ent, err = e.resolve(ctx, h); err != nil || ent == nil {
			return &Reservation{Status: KeyRefused}, err
		}
		res := &Reservation{Model: r.Model, UserID: ent.userID, Username: ent.username, Project: ent.project}
		version, err := e.priceEstimate(ctx, r, res)
		if err != nil {
			return nil, err
		}
		if res.Status == UnknownModel {
			return res, nil
		}
		code, err := e.reserveCall(ctx, ent, r, order, version, res)
		if err != nil {
			return nil, err
		}
		switch code {
		case scriptOK, scriptInsufficient:
			return res, nil
		case scriptRefused:
			return &Reservation{Status: KeyRefused}, nil
		case scriptDeleted:
			// Deleted, or moved to another shard: the lookup says which.
			e.cache.drop(h)
			continue
		case scriptCancelled:
			// Only an event id reused after a cancel gets here: ids are unique.
			return nil, fmt.Errorf("%w: reservation was cancelled", ErrUnavailable)
		case scriptStalePrice:
			if err := e.ReloadPrices(ctx); err != nil {
				return nil, err
			}
			continue
		}
		refused, err := e.repair(ctx, h, ent, code)
		if err != nil {
			return nil, err
		}
		if refused {
			return &Reservation{Status: KeyRefused}, nil
		}
	}
	return nil, fmt.Errorf("%w: reserve did not settle after repeated cache refreshes", ErrUnavailable)
}

// priceEstimate sets res.Price and res.Reserved; version is the price
// version argument ("" for a fixed amount, which no price change affects).
func (e *Engine) priceEstimate(ctx context.Context, r ReserveRequest, res *Reservation) (version string, err error) {
	if r.Fixed != nil {
		if *r.Fixed < 0 || *r.Fixed > MaxCredits {
			return "", invalid("fixed", fmt.Sprintf("amount %d out of range", *r.Fixed))
		}
		res.Reserved = *r.Fixed
		return "", nil
	}
	p, v, ok, err := e.PriceFor(ctx, r.Model)
	if err != nil {
		return "", err
	}
	if !ok {
		if r.Unknown.Reject {
			res.Status = UnknownModel
			return "", nil
		}
		p = r.Unknown.Default
	}
	res.Price, res.Reserved = p, p.Cost(r.Estimate)
	return formatInt(v), nil
}

// reserveCall runs reserve.lua once and fills res from a final answer; it
// returns the script's status code.
func (e *Engine) reserveCall(ctx context.Context, ent *userEntry, r ReserveRequest, order, version string, res *Reservation) (int64, error) {
	now := e.cfg.Now()
	b := ent.periodBounds(now)
	id := e.ids.Next()
	c := getCall(reserveScript)
	defer putCall(c)
	args := reserveArgs{UserKey: ent.userKey, ProjectKey: ent.projectKey, EventsKey: ent.shard.Events(),
		FlightKey: ent.flightKey, RecordKey: ent.shard.Reservation(id), LeasesKey: ent.shard.Leases(),
		PriceVersionKey: ent.shard.PriceVersion(), KeyHash: ent.keyArg, UserVersion: ent.versionArg,
		ProjectVersion: ent.projectVer, NowMs: now.UnixMilli(), AllowanceStart: b.allowanceStart, Month: b.month,
		Amount: res.Reserved, EventID: id, Request: r.Request, UserID: ent.userArg,
		DeadlineMs: now.Add(r.Lease).UnixMilli(), Order: order, PriceVersion: version, Model: r.Model, AllowanceEndMs: b.allowanceEnd}
	args.fill(c)
	if err := e.runner.Run(ctx, c); err != nil {
		if errors.Is(err, ErrOutcomeUnknown) {
			// The caller refuses the request: it must not stay reserved.
			e.cancelReserveLater(&Reservation{ID: id, Status: Reserved, UserID: ent.userID, projectID: ent.projectID, shard: ent.shard,
				userKey: ent.userKey, projectKey: ent.projectKey, flightKey: ent.flightKey})
		}
		return 0, err
	}
	a, err := parseReserveAnswer(c.Res)
	if err != nil {
		return 0, err
	}
	res.UserID, res.Username, res.Project = ent.userID, ent.username, ent.project
	switch a.Status {
	case scriptOK:
		res.ID, res.Status, res.Remaining, res.Taken = id, Reserved, a.Remaining, a.Taken
		res.userKey, res.projectKey, res.flightKey = ent.userKey, ent.projectKey, ent.flightKey
		res.projectID, res.shard = ent.projectID, ent.shard
		e.cfg.Metrics.add(ReservationsOpened, 1)
	case scriptInsufficient:
		res.Status, res.Remaining = Insufficient, a.Remaining
	}
	return a.Status, nil
}

// RenewLease moves an open reservation's deadline to now + d, so a long
// stream is not swept while it runs. ErrNotFound: already settled or swept.
func (e *Engine) RenewLease(ctx context.Context, r *Reservation, d time.Duration) error {
	if r == nil || r.Status != Reserved || d <= 0 {
		return invalid("reservation", "not an open reservation, or no lease duration")
	}
	c := getCall(renewScript)
	defer putCall(c)
	c.Keys = append(c.Keys, r.shard.Leases(), r.flightKey)
	c.Args = append(c.Args, r.ID, e.cfg.Now().Add(d).UnixMilli())
	if err := e.runner.Run(ctx, c); err != nil {
		return err
	}
	if len(c.Res) == 0 || c.Res[0] != 1 {
		return fmt.Errorf("renew lease of %s: %w", r.ID, ErrNotFound)
	}
	return nil
}
