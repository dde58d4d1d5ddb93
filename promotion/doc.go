// Package promotion moves release bundles between environments: it
// follows every environment's engine, keeps what runs where (State) and
// since when, and promotes a bundle into the next environment when its
// rules allow — on request, after approvals, by itself (autoPromote), or
// as a step of a release plan.
//
// Entry point: New(Config) *Controller. Run(ctx) is the loop (on the
// leader): observe each environment's apps, carry out pending requests
// and automatic promotions, advance release plans. The API calls
// Promote, Approve, Freeze, Unfreeze, CreatePlan and Overview.
//
// A promotion writes the bundle — the code version and the config files
// exactly as they ran in the source environment, before its overlay —
// into the target environment's own release document, through the
// target's config centre like any version change (specdoc.SetBundle);
// the target's engine then rolls it out with the target's own strategy
// and overlay. The rules are environments.Evaluate's, fed from the
// records this package keeps in etcd (Store, keys under
// /graylane/environments/ with the environment in each).
//
// Every promotion, approval and refusal is audited (Config.Audit).
package promotion
