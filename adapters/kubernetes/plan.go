package kubernetes

import (
	"errors"
	"fmt"
	"sort"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// ErrNoDeployment is returned (wrapped) when the app's primary Deployment
// does not exist and the spec has no pod template to create it from.
var ErrNoDeployment = errors.New("deployment not found")

// deployState is what planDeployments knows of one Deployment of the app.
type deployState struct {
	Name     string
	Version  string // the pod template's version; "" before graylane set one
	Replicas int    // spec.replicas
	Pods     int    // status.replicas: pods of every ReplicaSet of it
	Primary  bool
	Created  bool // created by graylane: may be deleted once idle
}

// planInput is everything planDeployments looks at. It is pure: the same
// input always gives the same actions.
type planInput struct {
	Strategy string
	// R is the release's replicas.
	R int
	// Want is the engine's desired instances per version.
	Want traffic.Replicas
	// Observed counts the app's pods per version (not terminating).
	Observed map[string]int
	// Desired is the spec's version.
	Desired string
	// Primary names the primary Deployment; CanCreatePrimary is true when
	// the spec has a pod template to create it from.
	Primary          string
	CanCreatePrimary bool
	Deployments      []deployState
}

// deployAction is what to make true of one Deployment.
type deployAction struct {
	Name     string
	Primary  bool
	Version  string // the version its pod template must hold
	Replicas int
	Create   bool // it does not exist yet
	Delete   bool // idle, created by graylane, wanted by nobody
}

// planDeployments maps desired replicas per version onto the app's
// Deployments.
//
// Canary and blue-green (exact): every version v with Want[v] > 0 lives in
// one Deployment scaled to exactly Want[v]: the Deployment whose template
// already holds v (the primary first), else the primary if graylane never
// templated it (an operator's Deployment, adopted in place), is idle (no
// pods, no replicas, its version wanted by nobody) or is missing and
// creatable, else {primary}-{version}. Deployments of versions nobody wants
// are scaled to zero; once they have no pods left, the ones graylane
// created (other than the primary) are deleted.
//
// Rolling (in place): one target version is chosen (see rollingTarget). If
// a Deployment other than the primary already holds it, it is scaled
// exactly like a canary's; otherwise the primary's template is switched to
// it and its replicas set to R (max(Want[target], min(R, current replicas))
// so a primary that starts from zero grows as the engine asks): the
// Deployment controller then replaces the old pods with its own
// RollingUpdate (maxSurge/maxUnavailable of the spec), and the engine
// observes the counts per version converge. Other Deployments are scaled
// exactly.
func planDeployments(in planInput) ([]deployAction, error) {
	byName := map[string]*deployState{}
	var primary *deployState
	for i := range in.Deployments {
		d := &in.Deployments[i]
		byName[d.Name] = d
		if d.Primary {
			primary = d
		}
	}
	acts := map[string]*deployAction{}
	assign := func(d *deployState, v string, replicas int) {
		acts[d.Name] = &deployAction{Name: d.Name, Primary: d.Primary, Version: v, Replicas: replicas}
	}
	holder := func(v string) *deployState {
		if primary != nil && primary.Version == v && acts[primary.Name] == nil {
			return primary
		}
		if d := byName[VersionDeploymentName(in.Primary, v)]; d != nil && d.Version == v && acts[d.Name] == nil {
			return d
		}
		for _, d := range sorted(in.Deployments) {
			if d.Version == v && acts[d.Name] == nil {
				return d
			}
		}
		return nil
	}
	createPrimary := func(v string, replicas int) error {
		if !in.CanCreatePrimary {
			return fmt.Errorf("primary Deployment %s: %w (create it with the annotation %s: %s, or give backend.kubernetes.template)", in.Primary, ErrNoDeployment, AnnotationManagedBy, ManagedBy)
		}
		acts[in.Primary] = &deployAction{Name: in.Primary, Primary: true, Version: v, Replicas: replicas, Create: true}
		return nil
	}

	wanted := versionsWanted(in.Want)
	if in.Strategy == spec.Rolling && len(wanted) > 0 {
		target := rollingTarget(in, primary)
		if d := holder(target); d != nil && !d.Primary {
			assign(d, target, in.Want[target])
		} else if primary != nil {
			assign(primary, target, max(in.Want[target], min(in.R, primary.Replicas)))
		} else if err := createPrimary(target, in.Want[target]); err != nil {
			return nil, err
		}
	} else {
		var homeless []string
		for _, v := range wanted {
			if d := holder(v); d != nil {
				assign(d, v, in.Want[v])
			} else {
				homeless = append(homeless, v)
			}
		}
		for _, v := range homeless {
			switch {
			case primary != nil && acts[primary.Name] == nil && primary.Version == "":
				assign(primary, v, in.Want[v]) // an operator's Deployment, adopted in place
			case primary != nil && acts[primary.Name] == nil && primary.Pods == 0 && primary.Replicas == 0 && in.Want[primary.Version] == 0:
				assign(primary, v, in.Want[v])
			case primary == nil && acts[in.Primary] == nil:
				if err := createPrimary(v, in.Want[v]); err != nil {
					return nil, err
				}
			default:
				name := VersionDeploymentName(in.Primary, v)
				if d := byName[name]; d != nil {
					assign(d, v, in.Want[v]) // a stale object of that name: retemplate it
				} else {
					acts[name] = &deployAction{Name: name, Version: v, Replicas: in.Want[v], Create: true}
				}
			}
		}
	}
	for _, d := range in.Deployments {
		if acts[d.Name] != nil {
			continue
		}
		n := in.Want[d.Version]
		if d.Version == "" {
			n = 0
		}
		acts[d.Name] = &deployAction{Name: d.Name, Primary: d.Primary, Version: d.Version, Replicas: n,
			Delete: n == 0 && !d.Primary && d.Created && d.Replicas == 0 && d.Pods == 0}
	}
	out := make([]deployAction, 0, len(acts))
	for _, a := range acts {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// rollingTarget picks the one version a rolling update moves the app to:
//
//   - the primary's current version, if it is wanted and either still
//     growing or nothing else grows (a roll in progress keeps its target);
//   - else a growing version (wanted above its observed pods): the spec's
//     version if it grows, else the one missing the most pods;
//   - else the spec's version if wanted, else the most wanted version.
//
// Examples (R = 4): {v1: 4, v2: 1} with the primary on v1 and 4 v1 pods ->
// v2 (starts the roll); {v1: 3, v2: 2} with the primary on v2 -> v2 (the
// roll goes on); {v1: 4, v2: 0} after v2 was rolled back -> v1.
func rollingTarget(in planInput, primary *deployState) string {
	wanted := versionsWanted(in.Want)
	var growing []string
	for _, v := range wanted {
		if in.Want[v] > in.Observed[v] {
			growing = append(growing, v)
		}
	}
	if primary != nil && in.Want[primary.Version] > 0 && primary.Version != "" {
		cur := primary.Version
		if len(growing) == 0 || contains(growing, cur) {
			return cur
		}
	}
	if len(growing) > 0 {
		if contains(growing, in.Desired) {
			return in.Desired
		}
		sort.SliceStable(growing, func(i, j int) bool {
			a, b := growing[i], growing[j]
			return in.Want[a]-in.Observed[a] > in.Want[b]-in.Observed[b]
		})
		return growing[0]
	}
	if in.Want[in.Desired] > 0 {
		return in.Desired
	}
	best := wanted[0]
	for _, v := range wanted[1:] {
		if in.Want[v] > in.Want[best] {
			best = v
		}
	}
	return best
}

// versionsWanted lists the versions with Want > 0, sorted.
func versionsWanted(want traffic.Replicas) []string {
	var out []string
	for v, n := range want {
		if n > 0 {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func sorted(ds []deployState) []*deployState {
	out := make([]*deployState, len(ds))
	for i := range ds {
		out[i] = &ds[i]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
