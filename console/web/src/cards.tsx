// The app page's cards: the rollout's steps, instances, analysis, config
// in step and gray rules.
import { useEffect, useState } from 'preact/hooks';
import { api, type AppDetail, type Bound, type GrayDoc, type Step, errorText } from './api';
import { WeightsBar, versionClass } from './components';
import { CheckChart } from './chart';
import { duration, parseDuration, short } from './format';

function stepText(s: Step): string {
  if (s.setWeight !== undefined) return `Set weight ${s.setWeight}%`;
  if (s.pause) return s.pause.duration ? `Pause ${s.pause.duration}` : 'Pause until promoted';
  if (s.setCanaryScale) {
    const c = s.setCanaryScale;
    if (c.replicas !== undefined) return `Canary scale: ${c.replicas} instances`;
    if (c.weight !== undefined) return `Canary scale: ${c.weight}% of replicas`;
    return 'Canary scale: match traffic weight';
  }
  if (s.analysis) return `Analysis: ${(s.analysis.checks ?? ['all checks']).join(', ')} × ${s.analysis.count ?? 1}`;
  return 'Step';
}

export function Steps({ d, now }: { d: AppDetail; now: number }) {
  const st = d.status;
  const strat = d.spec?.strategy;
  if (!strat) return <p class="muted">No valid spec yet.</p>;
  const active = !!st.canaryVersion;
  const head = active ? (
    <p class="rollout-line">
      <span class={`ver ${versionClass(st.stableVersion ?? '', st.canaryVersion, st.stableVersion)}`}>{st.stableVersion || '—'}</span> →{' '}
      <span class="ver v-canary">{st.canaryVersion}</span>
      {strat.type === 'canary' && st.totalSteps > 0 && <span class="muted"> · step {Math.min(st.step + 1, st.totalSteps)} of {st.totalSteps}</span>}
      {st.paused && <span class="tag tag-paused">paused by operator</span>}
    </p>
  ) : (
    <p class="muted">
      {st.stableVersion ? (
        <>
          <span class="ver v-stable">{st.stableVersion}</span> is {st.phase === 'Healthy' ? 'stable' : st.phase.toLowerCase()}. No rollout in progress: the next version change runs {strat.type === 'canary' ? 'these steps' : `a ${strat.type} update`}.
        </>
      ) : (
        'Not released yet.'
      )}
    </p>
  );
  if (strat.type !== 'canary' || !strat.steps?.length) {
    return (
      <>
        {head}
        <p class="muted small">
          {strat.type === 'rolling'
            ? 'Rolling: the new version grows while old instances are removed, keeping enough ready (maxSurge, maxUnavailable).'
            : strat.type === 'bluegreen'
              ? 'Blue-green: the new version comes up at full size as a preview, then traffic switches at once.'
              : ''}
        </p>
      </>
    );
  }
  return (
    <>
      {head}
      <ol class="steps">
        {strat.steps.map((s, i) => {
          const state = !active ? 'idle' : i < st.step ? 'done' : i === st.step ? 'current' : 'todo';
          let extra = '';
          if (state === 'current' && s.pause) {
            if (s.pause.duration && st.stepStartedAt) {
              const left = Date.parse(st.stepStartedAt) + parseDuration(s.pause.duration) - now;
              extra = left > 0 ? `resumes in ${duration(left)}` : 'resuming…';
            } else {
              extra = 'waiting for Promote or Resume';
            }
          }
          return (
            <li key={i} class={`step step-${state}`} aria-current={state === 'current' ? 'step' : undefined}>
              <span class="step-mark" aria-hidden="true">
                {state === 'done' ? '✓' : i + 1}
              </span>
              <span class="step-text">{stepText(s)}</span>
              {extra && <span class="step-extra" data-testid="countdown">{extra}</span>}
            </li>
          );
        })}
        <li class={`step step-${active && st.step >= strat.steps.length ? 'current' : active ? 'todo' : 'idle'}`}>
          <span class="step-mark" aria-hidden="true">
            ★
          </span>
          <span class="step-text">Promote: the new version becomes stable</span>
        </li>
      </ol>
    </>
  );
}

export function Instances({ d }: { d: AppDetail }) {
  const st = d.status;
  const list = st.instances ?? [];
  if (list.length === 0) return <p class="muted">No instances observed{st.source ? '' : ''}. (A standby graylane shows none: the leader observes them.)</p>;
  return (
    <div class="table-wrap">
      <table class="mini instances">
        <thead>
          <tr>
            <th scope="col">id</th>
            <th scope="col">version</th>
            <th scope="col">address</th>
            <th scope="col">ready</th>
            <th scope="col">config</th>
            <th scope="col">zone</th>
            <th scope="col">message</th>
          </tr>
        </thead>
        <tbody>
          {list.map((i) => (
            <tr key={i.id}>
              <td class="mono">{i.id}</td>
              <td>
                <span class={`ver ${versionClass(i.version, st.canaryVersion, st.stableVersion)}`}>{i.version}</span>
              </td>
              <td class="mono">{i.addr || '—'}</td>
              <td>{i.ready ? <span class="ok-text">✓ ready</span> : <span class="warn-text">not ready</span>}</td>
              <td class="mono" title={i.meta?.configChecksum}>
                {short(i.meta?.configChecksum)}
              </td>
              <td>{i.meta?.zone || '—'}</td>
              <td class="muted">{i.message || ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Analysis({ d }: { d: AppDetail }) {
  const checks = d.spec?.strategy.analysis?.checks ?? [];
  const res = d.status.analysis ?? {};
  return (
    <div class="checks">
      {checks.map((c) => {
        const b: Bound = c.http ?? c.prometheus ?? {};
        const runs = res[c.name]?.runs ?? [];
        const last = runs[runs.length - 1];
        const bounds = [b.min !== undefined && `≥ ${b.min}`, b.max !== undefined && `≤ ${b.max}`].filter(Boolean).join(' and ');
        return (
          <div class="check" key={c.name}>
            <div class="check-head">
              <strong>{c.name}</strong>
              <span class="muted small">
                {c.http ? `HTTP ${c.http.jsonPath ?? ''}` : `Prometheus: ${c.prometheus?.query}`} {bounds && `· pass when ${bounds}`}
              </span>
              {last ? <span class={last.ok ? 'ok-text' : 'bad'}>{last.ok ? '✓ passing' : '✗ failing'}</span> : <span class="muted">no run yet</span>}
            </div>
            {last?.message && <p class="muted small">{last.message}</p>}
            {runs.length > 0 && <CheckChart runs={runs} min={b.min} max={b.max} label={c.name} />}
          </div>
        );
      })}
      {!d.status.canaryVersion && <p class="muted small">Checks run while a new version is rolled out.</p>}
    </div>
  );
}

function DiffView({ diff }: { diff: string }) {
  return (
    <pre class="diff">
      {diff.split('\n').map((l, i) => (
        <span key={i} class={l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : ''}>
          {l + '\n'}
        </span>
      ))}
    </pre>
  );
}

export function Config({ d }: { d: AppDetail }) {
  const c = d.status.config!;
  return (
    <>
      <div class="kv">
        <span class="k">stable</span>
        <span>
          <span class="mono">{c.layout.stableIdentity || '—'}</span> <span class="muted mono">{short(c.layout.stableDigest)}</span>
        </span>
      </div>
      {c.layout.grayIdentity && (
        <div class="kv">
          <span class="k">gray</span>
          <span>
            <span class="mono">{c.layout.grayIdentity}</span> <span class="muted mono">{short(c.layout.grayDigest)}</span>
          </span>
        </div>
      )}
      {c.gate?.waiting && (
        <div class="kv">
          <span class="k">gate</span>
          <span>{c.gate.waiting}</span>
        </div>
      )}
      {c.error && <p class="error">{c.error}</p>}
      <table class="mini">
        <thead>
          <tr>
            <th scope="col">centre</th>
            <th scope="col">file</th>
            <th scope="col">role</th>
            <th scope="col">holds</th>
            <th scope="col">read back</th>
          </tr>
        </thead>
        <tbody>
          {c.placements.map((p, i) => (
            <tr key={i}>
              <td>{p.centre}</td>
              <td class="mono">{p.file}</td>
              <td>{p.role}</td>
              <td class="mono" title={p.want}>
                {p.identity} {short(p.want)}
              </td>
              <td>{p.verified ? <span class="ok-text">✓</span> : <span class="warn-text">{p.error || 'pending'}</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {c.drift?.map((dr, i) => (
        <div class="drift" key={i}>
          <p class="bad">
            Drift: <span class="mono">{dr.placement.file}</span> in {dr.placement.centre} was changed behind graylane’s back (wanted {short(dr.want)}, holds {short(dr.got) || 'nothing'}).
          </p>
          {dr.diff && <DiffView diff={dr.diff} />}
        </div>
      ))}
    </>
  );
}

export function Gray({ app, version }: { app: string; version: string }) {
  const [g, setG] = useState<GrayDoc | null>(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    api
      .gray(app)
      .then(setG)
      .catch((e) => setErr(errorText(e)));
  }, [app, version]);
  if (err) return <p class="muted">{err}</p>;
  if (!g) return <p class="muted">Loading…</p>;
  return (
    <>
      <div class="kv">
        <span class="k">split</span>
        <WeightsBar weights={Object.fromEntries(g.split.map((s) => [s.version, s.weight]))} canary={g.canary} stable={g.stable} />
      </div>
      <ol class="rules">
        {g.rules.map((r, i) => (
          <li key={i}>
            <strong>{r.name || `rule ${i + 1}`}</strong> → <span class="ver">{r.version}</span> <code class="small">{JSON.stringify(r.match ?? {})}</code>
          </li>
        ))}
      </ol>
      <p class="muted small">published generation {g.generation}</p>
    </>
  );
}

