import { useEffect, useState } from 'preact/hooks';
import { api, apiPath, currentEnv, type Action, type AppDetail, type EventView, type SessionInfo, errorText } from './api';
import { AttentionTags, Card, PhaseBadge, WeightsBar } from './components';
import { Analysis, Config, Gray, Instances, Steps } from './cards';
import { ACTIONS, ConfirmDialog, SetVersionDialog } from './dialogs';
import { SpecEditor } from './editor';
import { ago } from './format';
import { follow, type LiveState } from './live';
import { onLink } from './router';
import { RevisionsCard } from './records';

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
      .catch((e) => setErr(errorText(e)));

  useEffect(() => {
    reload();
    document.title = `${app} · graylane`;
    const stop = follow(
      apiPath(`/apps/${encodeURIComponent(app)}/events`),
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
        <Crumbs app={app} session={session} />
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
      <Crumbs app={app} session={session} />
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
        <RevisionsCard app={app} session={session} serving={st.stableVersion} version={`${st.phase}/${st.stableVersion}/${st.canaryVersion ?? ""}`} />

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

function Crumbs({ app, session }: { app: string; session: SessionInfo }) {
  const e = currentEnv();
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href={e ? `/envs/${encodeURIComponent(e)}` : '/'} onClick={onLink}>
        {e ? `Apps in ${e}` : 'Apps'}
      </a>
      <span aria-hidden="true"> / </span>
      <span aria-current="page">{app}</span>
      {session.envs?.length ? (
        <>
          <span aria-hidden="true"> · </span>
          <a href={`/apps/${encodeURIComponent(app)}/environments`} onClick={onLink} data-testid="environments-link">
            across environments
          </a>
        </>
      ) : null}
    </nav>
  );
}

