package configrelease

import (
	"fmt"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/spec"
)

// Roles of a placement.
const (
	// RoleStable is the location every instance reads unless a
	// version-bound copy for its identity exists.
	RoleStable = "stable"
	// RoleGray is a version-bound copy, read only by instances of one
	// release identity.
	RoleGray = "gray"
)

// Placement is one config file on one target in one role: where its
// content lives and how a client finds it.
//
// The version-bound ("gray") copy for release identity X, one mechanism
// on every centre — the instance presents X, the centre serves the copy
// bound to X, else the stable file:
//
//	etcd    key  <stable key>@X                         /config/shop/app.yaml@v2
//	nacos   dataId <stable dataId base>-X<.ext>, same   shop-app-v2.yaml
//	        group and namespace ('+' in X becomes '_')
//	apollo  the stable namespace's gray branch, rule    label v2 -> branch items
//	        {clientAppId: appId, clientLabelList: [X]}
type Placement struct {
	// Target is the index of the target in config.targets.
	Target int    `json:"target"`
	Centre string `json:"centre"`
	File   string `json:"file"`
	Format string `json:"format"`
	Role   string `json:"role"`
	// Identity is the release identity a gray copy is bound to.
	Identity string `json:"identity,omitempty"`
	// Loc is where the content is written: the stable location, or a gray
	// copy's own location (etcd, nacos). For Apollo gray copies it is the
	// stable location and Label selects the copy.
	Loc configsync.Location `json:"location"`
	// Label is the Apollo client label of a gray copy ("" otherwise).
	Label string `json:"label,omitempty"`
}

// Key identifies a placement (centre, location, label).
func (p Placement) Key() string {
	k := p.Centre + "|" + p.Loc.String()
	if p.Label != "" {
		k += "|label=" + p.Label
	}
	return k
}

func (p Placement) String() string {
	s := p.Centre + " " + p.Loc.String()
	if p.Label != "" {
		s += " (gray branch, label " + p.Label + ")"
	}
	return s
}

// Placements lists every placement of the files named (for every target
// that carries them) in one role; identity names the gray copy.
func Placements(app string, cfg *spec.Config, files []configwire.File, role, identity string) ([]Placement, error) {
	var out []Placement
	for ti := range cfg.Targets {
		t := &cfg.Targets[ti]
		for _, f := range files {
			if !t.Applies(f.Name) {
				continue
			}
			loc, err := configwire.StableLocation(app, t, f.Name)
			if err != nil {
				return nil, fmt.Errorf("config.targets[%d]: %w", ti, err)
			}
			p := Placement{Target: ti, Centre: t.Centre(), File: f.Name, Format: f.Format, Role: role, Loc: loc}
			if role == RoleGray {
				p.Identity = identity
				p.Loc, p.Label = configwire.GrayLocation(p.Centre, loc, identity)
			}
			out = append(out, p)
		}
	}
	return out, nil
}
