package rollout

import "testing"

const canaryYAML = `
app: demo
version: v1
replicas: 4
strategy:
  type: canary
  steps:
    - setWeight: 25
    - pause: {duration: 5s}
    - setWeight: 50
    - pause: {}
    - setWeight: 100
  progressDeadline: 1m
  scaleDownDelay: 30s
backend: {type: process, process: {command: [demoapp]}}
`

const canaryAutoRollbackYAML = `
app: demo
version: v1
replicas: 4
strategy:
  type: canary
  steps: [{setWeight: 25}, {pause: {duration: 10s}}, {setWeight: 50}]
  progressDeadline: 1m
  autoRollback: true
  scaleDownDelay: 30s
backend: {type: process, process: {command: [demoapp]}}
`

const canaryScaleYAML = `
app: demo
version: v1
replicas: 10
strategy:
  type: canary
  steps:
    - setCanaryScale: {replicas: 2}
    - pause: {}
    - setWeight: 10
    - setCanaryScale: {matchTrafficWeight: true}
    - setWeight: 30
backend: {type: process, process: {command: [demoapp]}}
`

const rollingYAML = `
app: demo
version: v1
replicas: 4
strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0, progressDeadline: 1m}
backend: {type: process, process: {command: [demoapp]}}
`

const rollingUnavailYAML = `
app: demo
version: v1
replicas: 4
strategy: {type: rolling, maxSurge: 0, maxUnavailable: "50%"}
backend: {type: process, process: {command: [demoapp]}}
`

const blueGreenYAML = `
app: demo
version: v1
replicas: 3
strategy: {type: bluegreen, autoPromotionEnabled: false, scaleDownDelay: 20s}
backend: {type: process, process: {command: [demoapp]}}
`

const blueGreenAutoYAML = `
app: demo
version: v1
replicas: 2
strategy: {type: bluegreen, autoPromotionDelay: 10s, scaleDownDelay: 0s}
backend: {type: process, process: {command: [demoapp]}}
`

func TestCanaryScenarios(t *testing.T) {
	runScenario(t, "happy_path", canaryYAML, `
		run
		expect phase=Healthy stable=v1 split=v1:100 running=v1:4/4
		version v2
		expect phase=Progressing canary=v2 step=1 split=v2:25,v1:75 running=v1:4/4,v2:1/1 requeue=5s
		wait 4s
		expect step=1 split=v2:25,v1:75 requeue=1s
		wait 1s
		expect phase=Paused step=3 split=v2:50,v1:50 running=v1:4/4,v2:2/2
		cmd promote
		expect phase=Healthy stable=v2 canary= previous=v1 split=v2:100 running=v1:4/4,v2:4/4
		wait 29s
		expect running=v1:4/4,v2:4/4
		wait 1s
		expect phase=Healthy running=v2:4/4
	`)
	runScenario(t, "apply_failure_is_not_healthy", canaryYAML, `
		norouter
		run
		expect phase=Healthy stable=v1 running=v1:4/4
		# the backend runs v1 but could not create the app's Service
		applyfail create service shop/demo: forbidden
		expect phase=Degraded stable=v1 running=v1:4/4 message=forbidden
		wait 1h
		expect phase=Degraded
		applyok
		expect phase=Healthy stable=v1 running=v1:4/4
		# during a canary the steps go on (what runs is observed); the
		# release ends Degraded, not Healthy, while applies fail
		version v2
		expect phase=Progressing canary=v2 step=1
		applyfail create service shop/demo: forbidden
		wait 5s
		cmd promote
		expect phase=Degraded stable=v2 canary= running=v2:4/4 message=forbidden
		applyok
		expect phase=Healthy stable=v2
	`)
	runScenario(t, "weight_waits_for_ready_canary", canaryYAML, `
		run
		hang v2
		version v2
		expect phase=Progressing step=0 split=v1:100 running=v1:4/4,v2:0/1
		unhang v2
		run
		expect step=1 split=v2:25,v1:75
	`)
	runScenario(t, "abort_mid_canary", canaryYAML, `
		run
		version v2
		wait 5s
		expect phase=Paused step=3 split=v2:50,v1:50
		cmd abort
		expect phase=Degraded stable=v1 canary= rejected=v2 split=v1:100 running=v1:4/4
		# the rejected version is not retried on its own
		wait 1h
		expect phase=Degraded running=v1:4/4
		# resume retries it from the first step
		cmd resume
		expect phase=Progressing canary=v2 step=1 split=v2:25,v1:75
	`)
	runScenario(t, "rollback_mid_canary", canaryYAML, `
		run
		version v2
		expect step=1
		cmd rollback
		expect phase=RolledBack stable=v1 canary= rejected=v2 split=v1:100 running=v1:4/4
		version v3
		expect phase=Progressing canary=v3 rejected= step=1 split=v3:25,v1:75
	`)
	runScenario(t, "newer_version_supersedes_mid_canary", canaryYAML, `
		run
		version v2
		wait 5s
		expect phase=Paused canary=v2 step=3
		version v3
		expect phase=Progressing canary=v3 step=1 split=v3:25,v1:75 running=v1:4/4,v3:1/1
		wait 5s
		cmd promote
		expect phase=Healthy stable=v3 previous=v1 running=v1:4/4,v3:4/4
	`)
	runScenario(t, "desired_back_to_stable_cancels", canaryYAML, `
		run
		version v2
		expect canary=v2 step=1
		version v1
		expect phase=Healthy canary= stable=v1 split=v1:100 running=v1:4/4
	`)
	runScenario(t, "pause_and_resume", canaryYAML, `
		run
		version v2
		expect step=1
		cmd pause
		expect phase=Paused step=1
		wait 1h
		expect phase=Paused step=1 split=v2:25,v1:75
		cmd resume
		expect phase=Paused step=3 split=v2:50,v1:50
		cmd resume
		expect phase=Healthy stable=v2
	`)
	runScenario(t, "promote_full", canaryYAML, `
		run
		version v2
		expect step=1 split=v2:25,v1:75
		cmd promote-full
		expect phase=Healthy stable=v2 split=v2:100 running=v1:4/4,v2:4/4
	`)
	runScenario(t, "promote_full_keeps_weight_until_ready", canaryYAML, `
		run
		version v2
		expect step=1
		hang v2
		plan
		cmd promote-full
		expect phase=Progressing split=v2:25,v1:75 running=v1:4/4,v2:1/4
		unhang v2
		run
		expect phase=Healthy stable=v2 split=v2:100
	`)
	runScenario(t, "rollback_within_scale_down_delay_moves_traffic_only", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		expect phase=Healthy stable=v2 previous=v1 running=v1:4/4,v2:4/4
		wait 10s
		cmd rollback
		expect phase=RolledBack stable=v1 previous=v2 rejected=v2 split=v1:100 running=v1:4/4,v2:4/4
		wait 30s
		expect phase=RolledBack running=v1:4/4
	`)
	runScenario(t, "rollback_after_scale_down_delay_scales_up_without_steps", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		wait 30s
		expect running=v2:4/4
		hang v1
		cmd rollback
		expect phase=Progressing canary=v1 step=0 split=v2:100 running=v1:0/4,v2:4/4
		unhang v1
		run
		expect phase=RolledBack stable=v1 split=v1:100 running=v1:4/4,v2:4/4
	`)
	runScenario(t, "desired_previous_within_window_is_fast", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		version v1
		expect phase=Healthy stable=v1 previous=v2 rejected= split=v1:100 running=v1:4/4,v2:4/4
	`)
	runScenario(t, "rollback_to_revision_still_running_moves_traffic_only", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		expect phase=Healthy stable=v2 previous=v1 running=v1:4/4,v2:4/4
		rollback-to v1
		expect phase=Healthy stable=v1 previous=v2 rejected= split=v1:100 running=v1:4/4,v2:4/4 events=
	`)
	runScenario(t, "rollback_to_revision_scaled_away_scales_up_then_switches", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		version v3
		wait 5s
		cmd promote
		wait 30s
		expect phase=Healthy stable=v3 running=v3:4/4
		hang v1
		rollback-to v1
		# no canary step: v1 comes up at full size beside v3, which keeps
		# all traffic until v1 is ready
		expect phase=Progressing canary=v1 step=0 split=v3:100 running=v1:0/4,v3:4/4
		unhang v1
		run
		expect phase=Healthy stable=v1 previous=v3 split=v1:100 running=v1:4/4,v3:4/4
	`)
	runScenario(t, "rollback_to_revision_with_mode_steps_runs_the_strategy", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		wait 30s
		rollback-to v1 steps
		expect phase=Progressing canary=v1 step=1 split=v1:25,v2:75
	`)
	runScenario(t, "desired_previous_after_window_runs_steps", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		wait 30s
		version v1
		expect phase=Progressing canary=v1 step=1 split=v1:25,v2:75
	`)
	runScenario(t, "progress_deadline_degrades_then_recovers", canaryYAML, `
		run
		hang v2
		version v2
		expect phase=Progressing step=0
		wait 59s
		expect phase=Progressing
		wait 2s
		expect phase=Degraded canary=v2 split=v1:100 running=v1:4/4,v2:0/1
		unhang v2
		run
		expect phase=Progressing step=1
	`)
	runScenario(t, "progress_deadline_auto_rollback", canaryAutoRollbackYAML, `
		run
		version v2
		expect step=1 split=v2:25,v1:75
		hang v2
		wait 10s
		expect phase=Progressing step=2 split=v2:25,v1:75 running=v1:4/4,v2:1/2
		wait 59s
		expect phase=Progressing step=2
		wait 2s
		expect phase=RolledBack stable=v1 canary= rejected=v2 split=v1:100 running=v1:4/4 events=
		wait 1h
		expect phase=RolledBack running=v1:4/4
	`)
	runScenario(t, "backend_stall_rolls_back_before_own_deadline", canaryAutoRollbackYAML, `
		run
		version v2
		expect step=1 split=v2:25,v1:75
		hang v2
		wait 10s
		expect phase=Progressing step=2 running=v1:4/4,v2:1/2
		wait 20s
		expect phase=Progressing step=2
		stall v2
		expect phase=RolledBack stable=v1 canary= rejected=v2 split=v1:100 running=v1:4/4
	`)
	runScenario(t, "backend_stall_degrades_then_recovers", canaryYAML, `
		run
		hang v2
		version v2
		expect phase=Progressing step=0
		stall v1
		expect phase=Progressing
		stall v2
		expect phase=Degraded canary=v2 split=v1:100
		unstall v2
		unhang v2
		run
		expect phase=Progressing step=1
	`)
	runScenario(t, "pause_step_does_not_count_against_deadline", canaryYAML, `
		run
		version v2
		wait 5s
		expect phase=Paused step=3
		wait 1h
		expect phase=Paused step=3
		cmd promote
		expect phase=Healthy stable=v2
	`)
	runScenario(t, "set_canary_scale", canaryScaleYAML, `
		run
		version v2
		expect phase=Paused step=1 split=v1:100 running=v1:10/10,v2:2/2
		cmd promote
		expect phase=Healthy stable=v2 running=v1:10/10,v2:10/10
	`)
	runScenario(t, "no_router_follows_instance_counts", canaryYAML, `
		norouter
		run
		version v2
		expect step=1 running=v1:3/3,v2:1/1
		wait 5s
		expect phase=Paused step=3 running=v1:2/2,v2:2/2
		cmd promote
		# no router: the old version goes to zero at promotion instead of
		# waiting scaleDownDelay at full size, where it would take half of
		# the users back (issue 13)
		expect phase=Healthy stable=v2 previous=v1 running=v2:4/4 events=
		wait 30s
		expect phase=Healthy stable=v2 running=v2:4/4
	`)
	runScenario(t, "no_router_rollback_after_promotion_scales_up_first", canaryYAML, `
		norouter
		run
		version v2
		wait 5s
		cmd promote
		expect phase=Healthy stable=v2 running=v2:4/4
		# the previous version is gone: a rollback brings it back up first,
		# then retires v2
		cmd rollback
		expect phase=RolledBack stable=v1 previous=v2 running=v1:4/4 rejected=v2
	`)
}

func TestRollingScenarios(t *testing.T) {
	runScenario(t, "no_router_old_version_never_grows", rollingYAML, `
		norouter
		maxUnavailableCheck
		run
		version v2
		expect phase=Healthy stable=v2 previous=v1 running=v2:4/4
		wait 1m
		expect phase=Healthy stable=v2 running=v2:4/4
	`)
	runScenario(t, "surge_one", rollingYAML, `
		maxUnavailableCheck
		run
		expect phase=Healthy stable=v1 running=v1:4/4
		version v2
		expect phase=Healthy stable=v2 previous=v1 split=v2:100 running=v2:4/4
	`)
	runScenario(t, "surge_one_step_by_step", rollingYAML, `
		maxUnavailableCheck
		run
		version v3
		expect phase=Healthy stable=v3
		hang v4
		version v4
		expect phase=Progressing running=v3:4/4,v4:0/1
		unhang v4
		settle
		plan
		expect want=v3:3,v4:1 split=v4:25,v3:75
		settle
		plan
		expect want=v3:3,v4:2 split=v4:25,v3:75
		settle
		plan
		expect want=v3:2,v4:2 split=v4:50,v3:50
		run
		expect phase=Healthy stable=v4 running=v4:4/4
	`)
	runScenario(t, "max_unavailable_half", rollingUnavailYAML, `
		maxUnavailableCheck
		run
		version v2
		expect phase=Healthy stable=v2 running=v2:4/4
	`)
	runScenario(t, "superseded_mid_rolling", rollingYAML, `
		run
		hang v2
		version v2
		expect running=v1:4/4,v2:0/1
		version v3
		expect phase=Healthy stable=v3 running=v3:4/4
	`)
	runScenario(t, "promote_rejected_for_rolling", rollingYAML, `
		run
		hang v2
		version v2
		cmd promote !rejected
		expect phase=Progressing
	`)
}

func TestBlueGreenScenarios(t *testing.T) {
	// graylane refuses bluegreen where nothing can switch traffic
	// (spec validation); the planner still defines it: the new version
	// comes up beside the old one, and at the switch the old one goes to
	// zero at once instead of waiting scaleDownDelay.
	runScenario(t, "no_router_old_version_never_grows", blueGreenYAML, `
		norouter
		run
		version v2
		expect phase=Paused canary=v2 running=v1:3/3,v2:3/3
		cmd promote
		expect phase=Healthy stable=v2 previous=v1 running=v2:3/3
		wait 1m
		expect phase=Healthy stable=v2 running=v2:3/3
	`)
	runScenario(t, "manual_promotion", blueGreenYAML, `
		run
		version v2
		expect phase=Paused canary=v2 step=1 split=v1:100 preview=v2 running=v1:3/3,v2:3/3
		cmd promote
		expect phase=Healthy stable=v2 previous=v1 split=v2:100 running=v1:3/3,v2:3/3
		wait 20s
		expect running=v2:3/3
	`)
	runScenario(t, "auto_promotion_after_delay", blueGreenAutoYAML, `
		run
		version v2
		expect phase=Progressing step=1 split=v1:100 preview=v2 requeue=10s
		wait 10s
		expect phase=Healthy stable=v2 split=v2:100 running=v2:2/2
	`)
	runScenario(t, "abort_preview", blueGreenYAML, `
		run
		version v2
		cmd abort
		expect phase=Degraded stable=v1 split=v1:100 running=v1:3/3
	`)
}

func TestCommandsInEveryPhase(t *testing.T) {
	// Healthy with no previous version: only pause is accepted.
	runScenario(t, "healthy_first_release", canaryYAML, `
		run
		cmd promote !rejected
		cmd promote-full !rejected
		cmd abort !rejected
		cmd rollback !rejected
		cmd resume !rejected
		cmd pause
		expect phase=Paused
		cmd pause !rejected
		cmd resume
		expect phase=Healthy
	`)
	// Paused app: a new version starts but holds at its first step.
	runScenario(t, "paused_before_release", canaryYAML, `
		run
		cmd pause
		version v2
		expect phase=Paused canary=v2 step=0 running=v1:4/4,v2:1/1
		cmd resume
		expect phase=Progressing step=1
	`)
	// Degraded (aborted): promote has nothing to promote; rollback has no
	// previous; resume retries.
	runScenario(t, "aborted", canaryYAML, `
		run
		version v2
		cmd abort
		cmd promote !rejected
		cmd abort !rejected
		cmd rollback !rejected
		cmd resume
		expect phase=Progressing canary=v2
	`)
	// RolledBack after promotion: rollback again returns to the rolled-back
	// version (it is the previous one now).
	runScenario(t, "rolled_back_then_rollback_again", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		cmd rollback
		expect phase=RolledBack stable=v1 rejected=v2
		cmd rollback
		expect phase=Healthy stable=v2 rejected= split=v2:100
	`)
	// Fast rollback in progress: promote is rejected, abort cancels it.
	runScenario(t, "fast_rollback_in_progress", canaryYAML, `
		run
		version v2
		wait 5s
		cmd promote
		wait 30s
		hang v1
		cmd rollback
		cmd promote !rejected
		expect phase=Progressing canary=v1
		cmd abort
		expect stable=v2 canary= split=v2:100
	`)
}

const analysisYAML = `
app: demo
version: v1
replicas: 4
strategy:
  type: canary
  analysis:
    interval: 5s
    failureLimit: 1
    checks:
      - name: errors
        prometheus: {address: "http://prom:9090", query: "rate(errors{version='{{.Version}}'}[1m])", max: 0.01}
      - name: smoke
        http: {url: "http://127.0.0.1:8081/healthz", headers: {X-Graylane-Version: "{{.Version}}"}}
  steps:
    - setWeight: 25
    - analysis: {checks: [smoke], count: 2}
    - setWeight: 100
backend: {type: process, process: {command: [demoapp]}}
`

const inlineOnlyYAML = `
app: demo
version: v1
replicas: 2
strategy:
  type: canary
  autoRollback: true
  analysis:
    background: false
    checks:
      - name: smoke
        http: {url: "http://127.0.0.1:8081/healthz"}
  steps:
    - setWeight: 50
    - pause: {duration: 10s}
    - analysis: {count: 2}
    - setWeight: 100
backend: {type: process, process: {command: [demoapp]}}
`

func TestAnalysisScenarios(t *testing.T) {
	runScenario(t, "analysis_step_waits_for_consecutive_successes", analysisYAML, `
		run
		version v2
		expect phase=Progressing step=1 split=v2:25,v1:75
		check smoke ok
		expect step=1
		check smoke fail
		check smoke ok
		expect step=1
		check smoke ok
		expect phase=Healthy stable=v2
	`)
	runScenario(t, "background_failures_over_the_limit_abort", analysisYAML, `
		run
		version v2
		check errors fail
		expect phase=Progressing step=1
		check errors ok
		check errors fail
		expect phase=Progressing
		check errors fail
		expect phase=Degraded stable=v1 canary= rejected=v2 split=v1:100 running=v1:4/4
	`)
	runScenario(t, "inline_only_checks_ignored_outside_their_step", inlineOnlyYAML, `
		run
		version v2
		expect step=1
		check smoke fail
		check smoke fail
		expect phase=Progressing step=1
		wait 10s
		expect phase=Progressing step=2
		check smoke fail
		expect phase=RolledBack stable=v1 rejected=v2 split=v1:100 running=v1:2/2
	`)
	runScenario(t, "results_of_an_older_version_are_ignored", analysisYAML, `
		run
		version v2
		check errors fail
		version v3
		check smoke ok
		check smoke ok
		expect phase=Healthy stable=v3
	`)
}
