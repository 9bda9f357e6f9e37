package metering

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// ProjectSpec is what an admin gives to create a project.
type ProjectSpec struct {
	Name             string
	AllowanceAmount  Credits
	Period           Period
	TimeZone         string
	PoolEnabled      bool
	PoolBalance      Credits // initial pool, recorded as a pool event
	PoolPerUserLimit *Credits
}

func (s *ProjectSpec) validate() error {
	if problem := NameProblem(s.Name); problem != "" {
		return invalidName("name", "project name", s.Name, problem)
	}
	if s.AllowanceAmount < 0 || s.AllowanceAmount > MaxCredits {
		return invalid("allowance.amount", "must be between 0 and 9007199254.740991")
	}
	p, err := ParsePeriod(string(s.Period))
	if err != nil {
		return invalid("allowance.period", err.Error())
	}
	s.Period = p
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if _, err := LoadLocation(s.TimeZone); err != nil {
		return invalid("allowance.timezone", err.Error())
	}
	if s.PoolBalance < 0 || s.PoolBalance > MaxCredits {
		return invalid("pool.balance", "must be between 0 and 9007199254.740991")
	}
	if l := s.PoolPerUserLimit; l != nil && (*l < 0 || *l > MaxCredits) {
		return invalid("pool.per_user_limit", "must be between 0 and 9007199254.740991, or null")
	}
	return nil
}

// CreateProject stores a project, mirrors it into Redis and records the
// initial pool, if any, as a pool event.
func (e *Engine) CreateProject(ctx context.Context, actor string, spec ProjectSpec) (Project, error) {
	if err := spec.validate(); err != nil {
		return Project{}, err
	}
	err := pgx.BeginFunc(ctx, e.db, func(tx pgx.Tx) error {
		p, err := insertProject(ctx, tx, Project{Name: spec.Name, AllowanceAmount: spec.AllowanceAmount,
			Period: spec.Period, TimeZone: spec.TimeZone, PoolEnabled: spec.PoolEnabled,
			PoolPerUserLimit: spec.PoolPerUserLimit})
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, AuditEntry{Actor: actor, Action: "project.create", Target: p.Name,
			Details: map[string]any{"allowance": spec.AllowanceAmount, "period": spec.Period,
				"timezone": spec.TimeZone, "pool_enabled": spec.PoolEnabled}}); err != nil {
			return err
		}
		// Mirrored before commit: if Redis is down, nothing is created.
		return e.syncProjectToRedis(ctx, p)
	})
	if err != nil {
		return Project{}, err
	}
	if spec.PoolBalance > 0 {
		return e.AdjustPool(ctx, actor, spec.Name, spec.PoolBalance, "initial pool")
	}
	return e.GetProject(ctx, spec.Name)
}

// GetProject returns the project with its live pool balance.
func (e *Engine) GetProject(ctx context.Context, name string) (Project, error) {
	p, err := getProjectByName(ctx, e.db, name)
	if err != nil {
		return p, err
	}
	return p, e.livePool(ctx, []*Project{&p})
}

// ListProjects returns every project, by name, with live pool balances.
func (e *Engine) ListProjects(ctx context.Context) ([]Project, error) {
	ps, err := listProjects(ctx, e.db)
	if err != nil {
		return nil, err
	}
	ptrs := make([]*Project, len(ps))
	for i := range ps {
		ptrs[i] = &ps[i]
	}
	return ps, e.livePool(ctx, ptrs)
}

// livePool replaces the Postgres pool balance with Redis's where Redis has
// one; a project Redis has not loaded yet is exactly as Postgres says.
func (e *Engine) livePool(ctx context.Context, ps []*Project) error {
	if len(ps) == 0 {
		return nil
	}
	cmds := make([]*redis.StringCmd, len(ps))
	_, err := e.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, p := range ps {
			cmds[i] = pipe.HGet(ctx, e.keys.ProjectShard(p.ID).Project(p.ID), projectPool)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable(err)
	}
	for i, p := range ps {
		if v, err := cmds[i].Int64(); err == nil {
			p.PoolBalance = Credits(v)
		}
	}
	return nil
}
