package spec

// Rollback modes (rollback.mode).
const (
	// RollbackFast rolls back to an earlier revision without steps: only
	// traffic moves when the target still runs (within scaleDownDelay),
	// otherwise it is scaled up first and then switched. The default.
	RollbackFast = "fast"
	// RollbackSteps rolls back to an earlier revision like any release,
	// through the strategy's steps (and analysis).
	RollbackSteps = "steps"
)

// RollbackPolicy says how a rollback to an earlier revision (graylane
// rollback --to-revision, POST /api/v1/apps/{app}/rollback with a
// revision) is carried out. The plain rollback command is not affected:
// it never runs steps.
type RollbackPolicy struct {
	// Mode is fast (default) or steps.
	Mode string `json:"mode,omitempty"`
}

// RollbackMode returns the release's rollback mode (RollbackFast unless
// rollback.mode says steps).
func (r *Release) RollbackMode() string {
	if r.Rollback != nil && r.Rollback.Mode == RollbackSteps {
		return RollbackSteps
	}
	return RollbackFast
}

func (p *RollbackPolicy) validate(path string, e *errs) {
	switch p.Mode {
	case "", RollbackFast, RollbackSteps:
	default:
		e.add(join(path, "mode"), "%q is not a rollback mode (fast or steps)", p.Mode)
	}
}
