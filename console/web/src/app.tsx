import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type Action, type AppDetail, type Bound, type EventView, type GrayDoc, type SessionInfo, type Step } from './api';
import { AttentionTags, Card, Dialog, PhaseBadge, WeightsBar, versionClass } from './components';
import { CheckChart } from './chart';
import { SpecEditor } from './editor';
import { ago, duration, parseDuration, short, weightList } from './format';
import { follow, type LiveState } from './live';
import { onLink } from './router';

interface ActionInfo {
  label: string;
  effect: string;
  danger?: boolean;
}

const ACTIONS: Record<string, ActionInfo> = {
  'set-version': { label: 'Set version…', effect: '' },
  promote: { label: 'Promote', effect: 'Skips the current step: a pause ends now, a blue-green switches now.' },
  'promote-full': { label: 'Promote full', effect: 'Skips every remaining step: the new version is scaled to full size and gets all traffic now.', danger: true },
  pause: { label: 'Pause', effect: 'Holds the release where it is. Traffic does not move until you resume. A timed pause step keeps counting.' },
  resume: { label: 'Resume', effect: 'Continues the release: undoes a pause, continues a pause step that waits for a human, or retries a rejected version.' },
  abort: { label: 'Abort', effect: 'Sends all traffic back to the stable version and scales the new one to zero. The phase becomes Degraded.', danger: true },
  rollback: { label: 'Rollback', effect: 'During a rollout: as Abort, phase RolledBack. After a promotion: back to the previous version without running steps.', danger: true },
};

export function AppPage({ app, session }: { app: string; session: SessionInfo }) {
  const [d, setD] = useState<AppDetail | null>(null);
  const [err, setErr] = useState('');
  const [events, setEvents] = useState<EventView[]>([]);
  const [live, setLive] = useState<LiveState>('connecting');
  const [now, setNow] = useState(Date.now());
  const [dialog, setDialog] = useState<string>('');
  const [notice, setNotice] = useState('');

  const reload = () =>
    api
      .app(app)
      .then((v) => {
        setD(v);
        setErr('');
      })
      .catch((e) => setErr(e instanceof ApiError ? e.message : String(e)));

  useEffect(() => {
    reload();
    document.title = `${app} · graylane`;
    const stop = follow(
      `/api/v1/apps/${encodeURIComponent(app)}/events`,
      {
        status: (m: { app: AppDetail }) => m.app && setD(m.app),
        event: (m: { event: EventView }) =>
          m.event &&
          setEvents((list) => {
            const key = (e: EventView) => e.time + e.reason + e.message;
            if (list.some((e) => key(e) === key(m.event))) return list;
            return [m.event, ...list].slice(0, 200);
          }),
      },
      setLive,
    );
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stop();
      clearInterval(tick);
      document.title = 'graylane';
    };
  }, [app]);

  if (!d) {
    return (
      <div class="page">
        <Crumbs app={app} />
        {err ? (
          <p class="error" role="alert">
            {err}
          </p>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </div>
    );
  }
  const st = d.status;
  const spec = d.spec;
  const byName = Object.fromEntries(d.actions.map((a) => [a.name, a])) as Record<string, Action>;
  const attention = [
    st.phase === 'Paused' && 'paused',
    st.phase === 'Degraded' && 'degraded',
    st.phase === 'RolledBack' && 'rolledBack',
    st.specError && 'invalidSpec',
    (st.config?.drift?.length ?? 0) > 0 && 'configDrift',
    !st.source.ready && 'centreDown',
    st.lastError && 'error',
  ].filter(Boolean) as string[];

  const press = (name: string) => {
    const a = byName[name];
    if (!a?.allowed) {
      setNotice(`${ACTIONS[name].label.replace('…', '')} is not possible now: ${a?.reason ?? 'unknown action'}.`);
      return;
    }
    setNotice('');
    setDialog(name);
  };

  return (
    <div class="page">
      <Crumbs app={app} />
      <div class="app-head">
        <div>
          <h1>
            {app} <PhaseBadge phase={st.phase} />
          </h1>
          <p class="muted app-meta">
            desired <span class="ver">{spec?.version ?? '—'}</span>
            {spec && (
              <>
                {' · '}
                {spec.strategy.type} · {spec.backend.type} backend{spec.traffic?.type ? ` · traffic ${spec.traffic.type}` : ''}
              </>
            )}
            {' · '}
            <span class={st.source.ready ? '' : 'bad'}>
              {st.source.name} {st.source.ready ? '' : `unavailable: ${st.source.error ?? ''}`}
            </span>
            {' · updated '}
            {ago(st.updatedAt, now)}
            <span class={`live live-${live}`}>
              <span class="dot" aria-hidden="true" />
              {live === 'live' ? 'live' : live === 'connecting' ? 'connecting' : 'reconnecting…'}
            </span>
          </p>
          <AttentionTags reasons={attention} />
        </div>
      </div>

      {st.message && <p class="banner">{st.message}</p>}
      {st.specError && (
        <p class="banner banner-bad" role="alert">
          The newest spec (revision {st.specError.revision}) was rejected; the last good one stays in force.{' '}
          {st.specError.field && <code>{st.specError.field}</code>} {st.specError.error}
        </p>
      )}
      {st.lastError && <p class="banner banner-bad">Last pass failed: {st.lastError}</p>}

      <div class="actions" role="toolbar" aria-label="Release actions">
        {Object.entries(ACTIONS).map(([name, info]) => {
          const a = byName[name];
          const ok = !!a?.allowed;
          return (
            <button
              key={name}
              class={`btn ${info.danger ? 'btn-danger-outline' : name === 'promote' ? 'btn-primary' : ''}`}
              aria-disabled={!ok}
              data-action={name}
              title={ok ? info.effect || 'Write a new desired version to the config centre' : a?.reason}
              onClick={() => press(name)}
            >
              {info.label}
            </button>
          );
        })}
      </div>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}

      <div class="grid">
        <Card title="Rollout" id="rollout">
          <Steps d={d} now={now} />
        </Card>
        <div class="stack">
        <Card title="Traffic" id="traffic">
          <div class="kv">
            <span class="k">desired</span>
            <WeightsBar weights={st.weights} canary={st.canaryVersion} stable={st.stableVersion} label="desired" />
          </div>
          {spec?.traffic?.type === 'none' ? (
            <p class="muted small">No router: traffic follows the ready instances of each version (traffic.type: none).</p>
          ) : (
            <div class="kv" data-testid="observed">
              <span class="k">observed</span>
              {st.observedWeights ? <WeightsBar weights={st.observedWeights} canary={st.canaryVersion} stable={st.stableVersion} label="observed" /> : <span class="muted">not reported yet (shown by the leader)</span>}
            </div>
          )}
          {st.preview && (
            <p class="muted small">
              preview: <span class="ver">{st.preview}</span> with header <code>X-Graylane-Version: {st.preview}</code>
            </p>
          )}
        </Card>

        <Card title="Release history" id="history">
          {st.history?.length ? (
            <table class="mini">
              <thead>
                <tr>
                  <th scope="col">version</th>
                  <th scope="col">outcome</th>
                  <th scope="col">when</th>
                </tr>
              </thead>
              <tbody>
                {st.history.map((h, i) => (
                  <tr key={i}>
                    <td>
                      <span class="ver">{h.version}</span>
                    </td>
                    <td class={`outcome outcome-${h.outcome}`}>{h.outcome}</td>
                    <td class="muted" title={h.at}>
                      {ago(h.at, now)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No release finished yet.</p>
          )}
          {st.previousVersion && (
            <p class="muted small">
              previous version: <span class="ver">{st.previousVersion}</span>
            </p>
          )}
        </Card>

        </div>
      </div>
      <div class="sections">
        <Card title={`Instances (${(st.instances ?? []).filter((i) => i.ready).length}/${(st.instances ?? []).length} ready)`} id="instances">
          <Instances d={d} />
        </Card>

        {spec?.strategy.analysis && (
          <Card title="Analysis" id="analysis">
            <Analysis d={d} />
          </Card>
        )}

        {st.config && (
          <Card title="Config in step" id="config">
            <Config d={d} />
          </Card>
        )}

        {(spec?.traffic?.type === 'gray' || spec?.backend.type === 'registry') && (
          <Card title="Gray rules" id="gray">
            <Gray app={app} version={st.updatedAt} />
          </Card>
        )}

        <Card title="Events" id="events" extra={<span class="muted small">live, newest first</span>}>
          {events.length === 0 ? (
            <p class="muted">No events since graylane started.</p>
          ) : (
            <ol class="events">
              {events.map((e, i) => (
                <li key={i} class={`ev ev-${e.type} ${e.reason === 'Audit' ? 'ev-audit' : ''}`}>
                  <time dateTime={e.time} title={e.time}>
                    {new Date(e.time).toLocaleTimeString()}
                  </time>
                  <span class="ev-reason">{e.reason}</span>
                  <span class="ev-msg">{e.message}</span>
                </li>
              ))}
            </ol>
          )}
        </Card>

        <Card title="Spec" id="spec">
          <SpecEditor app={app} canEdit={!!byName['edit']?.allowed} reason={byName['edit']?.reason} onSaved={reload} />
        </Card>
      </div>

      {dialog === 'set-version' ? (
        <SetVersionDialog d={d} onClose={() => setDialog('')} centre={st.source.name} />
      ) : (
        dialog && <ConfirmDialog d={d} name={dialog} onClose={() => setDialog('')} onDone={(v) => v && setD(v)} session={session} />
      )}
    </div>
  );
}

function Crumbs({ app }: { app: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href="/" onClick={onLink}>
        Apps
      </a>
      <span aria-hidden="true"> / </span>
      <span aria-current="page">{app}</span>
    </nav>
  );
}

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

function Steps({ d, now }: { d: AppDetail; now: number }) {
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

function Instances({ d }: { d: AppDetail }) {
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

function Analysis({ d }: { d: AppDetail }) {
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

function Config({ d }: { d: AppDetail }) {
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

function Gray({ app, version }: { app: string; version: string }) {
  const [g, setG] = useState<GrayDoc | null>(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    api
      .gray(app)
      .then(setG)
      .catch((e) => setErr(e instanceof ApiError ? e.message : String(e)));
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

function ConfirmDialog({ d, name, onClose, onDone }: { d: AppDetail; name: string; onClose: () => void; onDone: (v?: AppDetail) => void; session: SessionInfo }) {
  const info = ACTIONS[name];
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const st = d.status;
  const run = async () => {
    setBusy(true);
    setErr('');
    try {
      onDone(await api.command(d.app, name));
      onClose();
    } catch (e) {
      setErr(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const w = weightList(st.weights, st.canaryVersion, st.stableVersion)
    .map(([v, n]) => `${v} ${n}%`)
    .join(' · ');
  return (
    <Dialog open title={`${info.label} ${d.app}?`} onClose={onClose}>
      <p>{info.effect}</p>
      <p class="muted small">
        Now: {st.phase}
        {st.canaryVersion ? `, ${st.canaryVersion} at step ${Math.min(st.step + 1, st.totalSteps)} of ${st.totalSteps}` : ''}
        {w ? `, traffic ${w}` : ''}.
      </p>
      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}
      <div class="dialog-buttons">
        <button class="btn" onClick={onClose} autofocus={info.danger}>
          Cancel
        </button>
        <button class={`btn ${info.danger ? 'btn-danger' : 'btn-primary'}`} onClick={run} disabled={busy} data-confirm={name} autofocus={!info.danger}>
          {busy ? 'Working…' : info.label}
        </button>
      </div>
    </Dialog>
  );
}

function SetVersionDialog({ d, onClose, centre }: { d: AppDetail; onClose: () => void; centre: string }) {
  const [v, setV] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState('');
  const strat = d.spec?.strategy;
  const valid = /^[A-Za-z0-9._+-]{1,128}$/.test(v);
  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const r = await api.setVersion(d.app, v);
      setDone(`Written: version ${v} is in ${centre} (document version ${r.documentVersion}). graylane rolls it out now.`);
    } catch (x) {
      setErr(x instanceof ApiError ? x.message : String(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={`Set the version of ${d.app}`} onClose={onClose}>
      {done ? (
        <>
          <p class="ok-text" role="status">
            {done}
          </p>
          <div class="dialog-buttons">
            <button class="btn btn-primary" onClick={onClose} autofocus>
              Close
            </button>
          </div>
        </>
      ) : (
        <form onSubmit={run}>
          <label for="new-version">New version</label>
          <input id="new-version" value={v} onInput={(e) => setV((e.target as HTMLInputElement).value.trim())} placeholder={d.spec?.version} autofocus autocomplete="off" />
          <p class="muted small">
            This writes <code>version: {v || '…'}</code> (now <code>{d.spec?.version}</code>) into the spec in {centre}, keeping the rest of the document. graylane then rolls it out
            {strat?.type === 'canary' && strat.steps?.length ? ` with the canary's ${strat.steps.length} steps` : ` with a ${strat?.type ?? ''} update`}
            {d.status.canaryVersion ? `, superseding the rollout of ${d.status.canaryVersion}` : ''}.
          </p>
          {v && !valid && <p class="error">A version is 1 to 128 of A–Z a–z 0–9 . _ + -</p>}
          {err && (
            <p class="error" role="alert">
              {err}
            </p>
          )}
          <div class="dialog-buttons">
            <button type="button" class="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" class="btn btn-primary" disabled={busy || !valid || v === d.spec?.version}>
              {busy ? 'Writing…' : `Roll out ${v || '…'}`}
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
