import { useEffect, useState } from 'preact/hooks';
import { api, appHref, type AppEnv, type Board, type EnvSummary, type PromoteResult, type Rules, type SessionInfo, errorText } from './api';
import { PhaseBadge } from './components';
import { ago } from './format';
import { onLink } from './router';

const short = (d?: string) => (d ? d.slice(0, 12) : '—');

function rulesText(r: Rules): string {
  if (!r.from) return 'released into directly';
  const parts = [`from ${r.from}`];
  if (r.soak) parts.push(`soak ${r.soak}`);
  if (r.approvals) parts.push(`${r.approvals} approval${r.approvals > 1 ? 's' : ''}`);
  if (r.windows?.length) parts.push(`windows ${r.windows.join('; ')}`);
  if (r.requireAnalysis?.length) parts.push(`passed analysis in ${r.requireAnalysis.join(', ')}`);
  if (r.autoPromote) parts.push('promoted automatically');
  return parts.join(' · ');
}

function outcomeText(r: PromoteResult): string {
  switch (r.outcome) {
    case 'promoted':
      return `${r.app} promoted into ${r.env}${r.request ? ` (${r.request.version}, bundle ${short(r.request.bundle)})` : ''}: ${r.env} rolls it out now.`;
    case 'pending':
      return `Requested: ${r.app} waits to enter ${r.env} — ${r.rule}: ${r.reason}`;
    case 'approved':
      return `Approved; still waiting — ${r.rule}: ${r.reason}`;
  }
  return `Refused by rule ${r.rule}: ${r.reason}`;
}

/** EnvironmentsPage shows one app in every environment, in order: what
 * runs, since when, what its instances report, and whether the bundle of
 * the environment before may enter (and why not), with Promote and
 * Approve. */
export function EnvironmentsPage({ app, session }: { app: string; session: SessionInfo }) {
  const [envs, setEnvs] = useState<AppEnv[] | null>(null);
  const [err, setErr] = useState('');
  const [notice, setNotice] = useState<{ env: string; text: string; bad: boolean } | null>(null);
  const [busy, setBusy] = useState('');
  const [now, setNow] = useState(Date.now());
  const load = () =>
    api
      .appEnvironments(app)
      .then((r) => {
        setEnvs(r.environments);
        setErr('');
      })
      .catch((e) => setErr(errorText(e)));
  useEffect(() => {
    load();
    document.title = `${app} across environments · graylane`;
    const t = setInterval(() => {
      setNow(Date.now());
      load();
    }, 3000);
    return () => {
      clearInterval(t);
      document.title = 'graylane';
    };
  }, [app]);

  const act = (e: AppEnv, action: 'promote' | 'approve') => {
    setBusy(e.name + action);
    (action === 'promote' ? api.promoteEnv(app, e.name) : api.approveEnv(app, e.name))
      .then((r) => setNotice({ env: e.name, text: outcomeText(r), bad: r.outcome === 'refused' }))
      .catch((x) => setNotice({ env: e.name, text: errorText(x), bad: true }))
      .finally(() => {
        setBusy('');
        load();
      });
  };

  return (
    <div class="page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/" onClick={onLink}>
          Apps
        </a>
        <span aria-hidden="true"> / </span>
        <a href={appHref(app, '')} onClick={onLink}>
          {app}
        </a>
        <span aria-hidden="true"> / </span>
        <span aria-current="page">environments</span>
      </nav>
      <h1>{app} across environments</h1>
      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}
      {!envs && !err && <p class="muted">Loading…</p>}
      <div class="envs" data-testid="environments">
        {envs?.map((e) => {
          const v = e.promotion;
          const pending = e.request?.state === 'pending' ? e.request : undefined;
          const mine = pending && pending.requestedBy === session.user;
          return (
            <section class="card env-card" key={e.name} data-env={e.name} aria-labelledby={`env-${e.name}`}>
              <header class="env-head">
                <h2 id={`env-${e.name}`}>
                  <a href={appHref(app, e.default ? '' : e.name)} onClick={onLink}>
                    {e.name}
                  </a>{' '}
                  {e.present && <PhaseBadge phase={e.phase ?? ''} />}
                </h2>
                <p class="muted">
                  {e.centre} · {rulesText(e.rules)}
                </p>
              </header>
              {e.frozen && (
                <p class="banner banner-bad" data-testid="frozen">
                  Frozen by {e.frozen.by} {ago(e.frozen.at, now)}: {e.frozen.reason}
                </p>
              )}
              {!e.present ? (
                <p class="muted">{app} has no release here.</p>
              ) : (
                <dl class="env-facts">
                  <dt>Running</dt>
                  <dd data-testid="running">
                    {e.bundle ? (
                      <>
                        <span class="ver">{e.bundle.version}</span> bundle <code>{short(e.bundle.bundle)}</code>, Healthy since {ago(e.bundle.healthySince, now)}
                      </>
                    ) : (
                      'nothing Healthy yet'
                    )}
                  </dd>
                  {e.bundle?.configDigest && (
                    <>
                      <dt>Config</dt>
                      <dd data-testid="config">
                        effective <code>{short(e.bundle.configDigest)}</code>
                        {e.reported &&
                          ` · instances report ${Object.entries(e.reported)
                            .map(([d, n]) => `${short(d)}×${n}`)
                            .join(', ')}`}
                      </dd>
                    </>
                  )}
                  {e.bundle?.analysis && (
                    <>
                      <dt>Analysis</dt>
                      <dd>
                        {e.bundle.analysis} <span class="muted">({e.bundle.analysisDetail})</span>
                      </dd>
                    </>
                  )}
                  {e.failed && (
                    <>
                      <dt>Failed</dt>
                      <dd class="bad">
                        {e.failed.version}: {e.failed.reason}
                      </dd>
                    </>
                  )}
                  {e.message && (
                    <>
                      <dt>Status</dt>
                      <dd>{e.message}</dd>
                    </>
                  )}
                </dl>
              )}
              {v && (
                <div class="env-promotion" data-testid="promotion">
                  {v.allowed ? (
                    <p class="ok">
                      {e.rules.from} → {e.name}: {v.candidate?.version} (bundle {short(v.candidate?.bundle)}) may enter now.
                    </p>
                  ) : (
                    <ul class="refusals">
                      {v.refusals?.map((r) => (
                        <li key={r.rule} data-rule={r.rule}>
                          <strong>{r.rule}</strong>: {r.reason}
                        </li>
                      ))}
                    </ul>
                  )}
                  {pending && (
                    <p class="muted" data-testid="request">
                      {pending.version} requested by {pending.requestedBy} {ago(pending.requestedAt, now)}; approvals {v.approvals}/{v.needed}
                      {v.approvedBy?.length ? ` (${v.approvedBy.join(', ')})` : ''}
                    </p>
                  )}
                  <div class="actions">
                    <button class="btn btn-primary" data-promote={e.name} disabled={busy !== '' || !v.candidate} title={v.candidate ? '' : 'nothing to promote'} onClick={() => act(e, 'promote')}>
                      Promote from {e.rules.from}
                    </button>
                    {pending && (
                      <button class="btn" data-approve={e.name} disabled={busy !== '' || !!mine} title={mine ? 'you requested it: someone else approves' : ''} onClick={() => act(e, 'approve')}>
                        Approve {pending.version}
                      </button>
                    )}
                  </div>
                  {notice?.env === e.name && (
                    <p class={`notice ${notice.bad ? 'bad' : ''}`} role="status" data-testid="outcome">
                      {notice.text}
                    </p>
                  )}
                </div>
              )}
            </section>
          );
        })}
      </div>
    </div>
  );
}

/** EnvironmentListPage is the board (Kargo's stages): one column per
 * environment in declared order (its centre, rules and freeze, with
 * Freeze and Unfreeze), one row per app with, in each column, the bundle
 * running there and the promotion into it — allowed, or the rules that
 * refuse it — with Promote and Approve. Every button goes through the
 * API with the session's token and CSRF token, and is audited there. */
export function EnvironmentListPage({ session }: { session: SessionInfo }) {
  const [board, setBoard] = useState<Board | null>(null);
  const [err, setErr] = useState('');
  const [notice, setNotice] = useState<{ key: string; text: string; bad: boolean } | null>(null);
  const [busy, setBusy] = useState('');
  const [now, setNow] = useState(Date.now());
  const [freezing, setFreezing] = useState('');
  const [reason, setReason] = useState('');
  const load = () =>
    api
      .pipeline()
      .then((b) => {
        setBoard(b);
        setErr('');
      })
      .catch((e) => setErr(errorText(e)));
  useEffect(() => {
    load();
    document.title = 'Environments · graylane';
    const t = setInterval(() => {
      setNow(Date.now());
      load();
    }, 3000);
    return () => {
      clearInterval(t);
      document.title = 'graylane';
    };
  }, []);
  const fail = (key: string) => (x: unknown) => setNotice({ key, text: errorText(x), bad: true });
  const act = (app: string, e: AppEnv, action: 'promote' | 'approve') => {
    const key = `${app}/${e.name}`;
    setBusy(key + action);
    (action === 'promote' ? api.promoteEnv(app, e.name) : api.approveEnv(app, e.name))
      .then((r) => setNotice({ key, text: outcomeText(r), bad: r.outcome === 'refused' }), fail(key))
      .finally(() => {
        setBusy('');
        load();
      });
  };
  const freeze = (e: EnvSummary) => {
    if (!reason.trim()) {
      setNotice({ key: e.name, text: 'Say why: the reason is shown wherever the freeze is.', bad: true });
      return;
    }
    api.freeze(e.name, reason.trim()).then(() => {
      setFreezing('');
      setReason('');
      setNotice(null);
      load();
    }, fail(e.name));
  };
  const unfreeze = (e: EnvSummary) => api.unfreeze(e.name).then(load, fail(e.name));
  const envs = board?.environments ?? [];
  const cols = { gridTemplateColumns: `minmax(8rem, 11rem) repeat(${Math.max(envs.length, 1)}, minmax(15rem, 1fr))` };
  return (
    <div class="page">
      <h1>Environments</h1>
      <p class="muted">
        Bundles (code version and bound config, by digest) move left to right. A promotion enters an environment only when its rules allow it; a refused one
        changes nothing and names the rule.
      </p>
      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}
      {!board && !err && <p class="muted">Loading…</p>}
      {board && (
        <div class="board" style={cols} data-testid="board" role="table" aria-label="Apps across environments">
          <div class="board-corner" role="columnheader">
            App
          </div>
          {envs.map((e) => (
            <div class={`board-stage ${e.frozen ? 'frozen' : ''}`} key={e.name} data-stage={e.name} role="columnheader">
              <h2>
                {e.rules.from && <span class="muted arrow" aria-label={`from ${e.rules.from}`}>{e.rules.from} → </span>}
                <a href={e.default ? '/' : `/envs/${encodeURIComponent(e.name)}`} onClick={onLink}>
                  {e.name}
                </a>
                {e.default && <span class="muted small"> (default)</span>}
              </h2>
              <p class="muted small">{e.centre}</p>
              <p class="small" data-testid="rules">
                {rulesText(e.rules)}
              </p>
              {e.frozen ? (
                <div class="banner banner-bad" data-testid="frozen">
                  Frozen by {e.frozen.by} {ago(e.frozen.at, now)}: {e.frozen.reason}{' '}
                  <button class="btn btn-small" data-unfreeze={e.name} onClick={() => unfreeze(e)}>
                    Unfreeze
                  </button>
                </div>
              ) : freezing === e.name ? (
                <form
                  class="freeze-form"
                  onSubmit={(ev) => {
                    ev.preventDefault();
                    freeze(e);
                  }}
                >
                  <label class="small" for={`freeze-${e.name}`}>
                    Why freeze {e.name}? (no promotions in, no releases started)
                  </label>
                  <input id={`freeze-${e.name}`} class="input" value={reason} onInput={(ev) => setReason((ev.target as HTMLInputElement).value)} />
                  <button class="btn btn-small btn-danger" type="submit" data-freeze-confirm={e.name}>
                    Freeze
                  </button>
                  <button class="btn btn-small btn-ghost" type="button" onClick={() => setFreezing('')}>
                    Cancel
                  </button>
                </form>
              ) : (
                <button class="btn btn-small" data-freeze={e.name} onClick={() => setFreezing(e.name)}>
                  Freeze…
                </button>
              )}
              {notice?.key === e.name && (
                <p class={`notice ${notice.bad ? 'bad' : ''}`} role="status">
                  {notice.text}
                </p>
              )}
            </div>
          ))}
          {board.apps.length === 0 && (
            <p class="muted board-empty" style={{ gridColumn: `1 / span ${envs.length + 1}` }}>
              No app in any environment yet.
            </p>
          )}
          {board.apps.map((a) => [
            <div class="board-app" key={a.app} role="rowheader" data-board-app={a.app}>
              <a href={`/apps/${encodeURIComponent(a.app)}/environments`} onClick={onLink}>
                {a.app}
              </a>
            </div>,
            ...a.environments.map((e) => {
              const key = `${a.app}/${e.name}`;
              const v = e.promotion;
              const pending = e.request?.state === 'pending' ? e.request : undefined;
              const mine = pending && pending.requestedBy === session.user;
              return (
                <div class="board-cell" key={key} data-cell={key} role="cell">
                  {e.present ? (
                    <div data-testid="running">
                      <a href={appHref(a.app, e.default ? '' : e.name)} onClick={onLink}>
                        <PhaseBadge phase={e.phase ?? ''} />
                      </a>{' '}
                      {e.bundle ? (
                        <>
                          <span class="ver">{e.bundle.version}</span> <code title={e.bundle.bundle}>{short(e.bundle.bundle)}</code>
                          <div class="muted small">Healthy since {ago(e.bundle.healthySince, now)}</div>
                        </>
                      ) : (
                        <span class="muted">{e.version ?? ''} — nothing Healthy yet</span>
                      )}
                    </div>
                  ) : (
                    <p class="muted small">not released here</p>
                  )}
                  {e.failed && <p class="bad small">failed {e.failed.version}: {e.failed.reason}</p>}
                  {v && (v.candidate || pending) && (
                    <div class="board-promo" data-testid="promotion">
                      {v.allowed ? (
                        <p class="ok small">
                          {v.candidate?.version} <code>{short(v.candidate?.bundle)}</code> may enter now
                        </p>
                      ) : (
                        <>
                          <p class="small">
                            {v.candidate ? (
                              <>
                                {v.candidate.version} <code>{short(v.candidate.bundle)}</code> from {e.rules.from}: waits
                              </>
                            ) : (
                              'waits'
                            )}
                          </p>
                          <ul class="refusals small">
                            {v.refusals?.map((r) => (
                              <li key={r.rule} data-rule={r.rule}>
                                <strong>{r.rule}</strong>: {r.reason}
                              </li>
                            ))}
                          </ul>
                        </>
                      )}
                      {pending && (
                        <p class="muted small" data-testid="request">
                          requested by {pending.requestedBy} {ago(pending.requestedAt, now)}; approvals {v.approvals}/{v.needed}
                          {v.approvedBy?.length ? ` (${v.approvedBy.join(', ')})` : ''}
                        </p>
                      )}
                      <div class="actions">
                        {v.candidate && (
                          <button class="btn btn-small btn-primary" data-promote={key} disabled={busy !== ''} onClick={() => act(a.app, e, 'promote')}>
                            Promote
                          </button>
                        )}
                        {pending && (
                          <button
                            class="btn btn-small"
                            data-approve={key}
                            disabled={busy !== '' || !!mine}
                            title={mine ? 'you requested it: someone else approves' : ''}
                            onClick={() => act(a.app, e, 'approve')}
                          >
                            Approve
                          </button>
                        )}
                      </div>
                    </div>
                  )}
                  {notice?.key === key && (
                    <p class={`notice small ${notice.bad ? 'bad' : ''}`} role="status" data-testid="outcome">
                      {notice.text}
                    </p>
                  )}
                </div>
              );
            }),
          ])}
        </div>
      )}
    </div>
  );
}
