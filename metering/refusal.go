package metering

import "fmt"

// Refusal is why an admin operation was refused, written for the admin as
// a whole sentence, with the kind of refusal (ErrNotFound, ErrConflict,
// ErrInsufficient, ErrRevealDisabled) that errors.Is finds and the admin
// API maps to a status. Unlike fmt.Errorf("...: %w", ErrConflict), its
// text does not end in the kind's name, so the admin API can show it as
// it is; callers that add context with %w keep both the kind and, through
// errors.As, the sentence.
type Refusal struct {
	Kind    error
	Message string
}

func (r *Refusal) Error() string { return r.Message }
func (r *Refusal) Unwrap() error { return r.Kind }

// refuse makes a Refusal of kind with a formatted sentence.
func refuse(kind error, format string, args ...any) error {
	return &Refusal{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// noUser is the refusal for a username that names nobody.
func noUser(name string) error { return refuse(ErrNotFound, "There is no user named %q.", name) }

// noPrice is the refusal for a model without a price.
func noPrice(model string) error { return refuse(ErrNotFound, "Model %q has no price.", model) }

// usernameTaken is the refusal for a username another user has.
func usernameTaken(name string) error {
	return refuse(ErrConflict, "The username %q is taken by another user.", name)
}

// noProject is the refusal for a project name that names none.
func noProject(name string) error {
	return refuse(ErrNotFound, "There is no project named %q.", name)
}
