// Release records in the console: an app's revisions with a Rollback
// button per revision, release statistics and the audit log. Every action
// goes through the same API route (and the same audit) as the CLI.
import { useEffect, useState } from 'preact/hooks';
import { api, type AuditRecord, type Revision, type SessionInfo, type Stats, errorText } from './api';
import { Card, Dialog } from './components';
import { ago, duration, short } from './format';
import { onLink } from './router';

function took(r: Revision, now: number): string {
  const start = Date.parse(r.seenAt && r.seenAt < r.startedAt ? r.seenAt : r.startedAt);
  const end = r.endedAt && !r.endedAt.startsWith('0001') ? Date.parse(r.endedAt) : now;
  return duration(end - start);
}

function outcomeText(r: Revision): string {
  let o = r.outcome || 'in progress';
  if (r.kind === 'rollback') o += r.rollbackTo ? ` (rollback to #${r.rollbackTo})` : ' (rollback)';
  if (r.kind === 'adopted') o += ' (adopted)';
  return o;
}

function causeText(r: Revision): string {
  const c = r.cause;
  if (c.kind === 'centre') return `centre edit${c.documentVersion ? ` (${c.centre} ${c.documentVersion})` : ''}`;
  if (c.kind === 'graylane') return 'graylane';
  if (!c.kind) return 'unknown';
  return `${c.actor || 'anonymous'}${c.action ? ` (${c.action})` : ''}${c.via === 'console' ? ' · console' : ''}`;
}

/** RevisionsCard lists an app's revisions, each with a Rollback button. */
export function RevisionsCard({ app, session, serving, version }: { app: string; session: SessionInfo; serving?: string; version?: string }) {
  const [revs, setRevs] = useState<Revision[] | null>(null);
  const [err, setErr] = useState('');
  const [target, setTarget] = useState<Revision | null>(null);
  const now = Date.now();
  const load = () =>
    api
      .revisions(app)
      .then((r) => {
        setRevs(r.revisions);
        setErr('');
      })
      .catch((e) => setErr(errorText(e)));
  useEffect(() => {
    load();
  }, [app, version, serving]);
  const canWrite = !session.authRequired || session.role === 'write';
  return (
    <Card title="Revisions" id="revisions" extra={<span class="muted small">kept in etcd, newest first</span>}>
      {err && <p class="error">{err}</p>}
      {revs && revs.length === 0 && <p class="muted">No revision yet.</p>}
      {revs && revs.length > 0 && (
        <table class="mini revisions">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">version</th>
              <th scope="col">config</th>
              <th scope="col">outcome</th>
              <th scope="col">started</th>
              <th scope="col">took</th>
              <th scope="col">by</th>
              <th scope="col">
                <span class="sr-only">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {revs.map((r) => {
              const current = r.identity === serving && r.outcome === 'promoted' && r.number === revs.find((x) => x.outcome === 'promoted')?.number;
              const why = !canWrite ? 'your token is read-only' : current ? 'this revision is serving now' : !r.outcome ? 'still rolling out' : '';
              return (
                <tr key={r.number} data-revision={r.number}>
                  <td>{r.number}</td>
                  <td>
                    <span class="ver">{r.version}</span>
                  </td>
                  <td class="muted" title={r.config?.digest}>
                    {r.config ? `${r.config.identity} ${short(r.config.digest)}` : '—'}
                  </td>
                  <td class={`outcome outcome-${r.outcome || 'progress'}`} title={r.reason}>
                    {outcomeText(r)}
                  </td>
                  <td class="muted" title={r.startedAt}>
                    {ago(r.startedAt, now)}
                  </td>
                  <td>{took(r, now)}</td>
                  <td>{causeText(r)}</td>
                  <td>
                    <button class="btn btn-small" disabled={!!why} title={why || `write revision ${r.number}'s code and config to the centre`} onClick={() => setTarget(r)} data-rollback={r.number}>
                      Roll back to #{r.number}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {target && <RollbackToDialog app={app} rev={target} onClose={() => setTarget(null)} onDone={load} />}
    </Card>
  );
}

function RollbackToDialog({ app, rev, onClose, onDone }: { app: string; rev: Revision; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const run = async () => {
    setBusy(true);
    setErr('');
    try {
      await api.rollbackTo(app, rev.number);
      onDone();
      onClose();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={`Roll ${app} back to revision ${rev.number}?`} onClose={onClose}>
      <p>
        Writes revision {rev.number}'s code version <span class="ver">{rev.version}</span>
        {rev.config ? (
          <>
            {' '}
            and its config <span class="ver">{rev.config.identity}</span>
          </>
        ) : null}{' '}
        into the app's document in the config centre. The rest of today's spec stays. graylane rolls it out without steps
        (only traffic moves if it still runs), unless the spec says <code>rollback: {'{'}mode: steps{'}'}</code>.
      </p>
      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}
      <div class="dialog-buttons">
        <button class="btn" onClick={onClose} autofocus>
          Cancel
        </button>
        <button class="btn btn-danger" onClick={run} disabled={busy} data-confirm="rollback-to">
          {busy ? 'Working…' : `Roll back to #${rev.number}`}
        </button>
      </div>
    </Dialog>
  );
}

function secs(n: number, count: number): string {
  return count ? duration(n * 1000) : '—';
}

/** StatsPage shows release statistics over 7 and 30 days. */
export function StatsPage() {
  const [stats, setStats] = useState<Record<string, { all: Stats; apps: Record<string, Stats> }> | null>(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    document.title = 'statistics · graylane';
    api
      .stats()
      .then((s) => setStats(s.windows))
      .catch((e) => setErr(errorText(e)));
  }, []);
  const rows: [string, string, Stats][] = [];
  if (stats) {
    for (const w of ['7d', '30d']) {
      const ws = stats[w];
      if (!ws) continue;
      rows.push(['all apps', w, ws.all]);
      for (const a of Object.keys(ws.apps).sort()) rows.push([a, w, ws.apps[a]]);
    }
  }
  return (
    <div class="page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/" onClick={onLink}>
          Apps
        </a>
        <span aria-hidden="true"> / </span>
        <span aria-current="page">Statistics</span>
      </nav>
      <h1>Release statistics</h1>
      {err && <p class="error">{err}</p>}
      <table class="mini stats" data-testid="stats">
        <thead>
          <tr>
            {['app', 'window', 'started', 'promoted', 'aborted', 'rolled back', 'failed', 'lead p50', 'lead p90', 'restore p50', 'restore p90', 'change failure rate'].map((h) => (
              <th scope="col">{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map(([a, w, s]) => (
            <tr key={a + w} data-app={a} data-window={w}>
              <td>{a === 'all apps' ? <strong>all apps</strong> : <a href={`/apps/${encodeURIComponent(a)}`} onClick={onLink}>{a}</a>}</td>
              <td>{w}</td>
              <td>{s.started}</td>
              <td>{s.promoted}</td>
              <td>{s.aborted}</td>
              <td>{s.rolledBack}</td>
              <td>{s.failed}</td>
              <td>{secs(s.leadTime.medianSeconds, s.leadTime.count)}</td>
              <td>{secs(s.leadTime.p90Seconds, s.leadTime.count)}</td>
              <td>{secs(s.timeToRestore.medianSeconds, s.timeToRestore.count)}</td>
              <td>{secs(s.timeToRestore.p90Seconds, s.timeToRestore.count)}</td>
              <td>{(s.changeFailureRate * 100).toFixed(1)}%</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted small">
        Lead time: desired version seen → Healthy. Time to restore: failure detected → all traffic back on a good version (and a rollback to a revision: request →
        Healthy). Change failure rate: failed releases (aborted, rolled back, failed, or promoted and later rolled back) over finished ones.
      </p>
    </div>
  );
}

/** AuditPage shows the audit log, filtered by app, user and time. */
export function AuditPage({ search }: { search: URLSearchParams }) {
  const [recs, setRecs] = useState<AuditRecord[] | null>(null);
  const [err, setErr] = useState('');
  const [app, setApp] = useState(search.get('app') ?? '');
  const [user, setUser] = useState(search.get('user') ?? '');
  const [since, setSince] = useState(search.get('since') ?? '24h');
  const load = () => {
    const q = new URLSearchParams();
    if (app) q.set('app', app);
    if (user) q.set('user', user);
    if (since) q.set('since', since);
    api
      .audit(q)
      .then((r) => {
        setRecs(r.records);
        setErr('');
      })
      .catch((e) => setErr(errorText(e)));
  };
  useEffect(() => {
    document.title = 'audit log · graylane';
    load();
  }, []);
  return (
    <div class="page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/" onClick={onLink}>
          Apps
        </a>
        <span aria-hidden="true"> / </span>
        <span aria-current="page">Audit log</span>
      </nav>
      <h1>Audit log</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          load();
        }}
      >
        <label>
          app <input value={app} onInput={(e) => setApp((e.target as HTMLInputElement).value)} name="app" />
        </label>
        <label>
          user <input value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} name="user" />
        </label>
        <label>
          since <input value={since} onInput={(e) => setSince((e.target as HTMLInputElement).value)} name="since" placeholder="24h or 2026-01-01T00:00:00Z" />
        </label>
        <button class="btn btn-small" type="submit">
          Show
        </button>
      </form>
      {err && <p class="error">{err}</p>}
      {recs && recs.length === 0 && <p class="muted">No record matches.</p>}
      {recs && recs.length > 0 && (
        <table class="mini audit" data-testid="audit">
          <thead>
            <tr>
              {['time', 'actor', 'via', 'source', 'outcome', 'app', 'action', 'detail'].map((h) => (
                <th scope="col">{h}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {recs.map((r) => (
              <tr key={r.id} class={`audit-${r.outcome}`}>
                <td title={r.time}>{new Date(r.time).toLocaleString()}</td>
                <td>{r.actor}</td>
                <td>{r.via}</td>
                <td>{r.source || '—'}</td>
                <td class={`outcome outcome-${r.outcome}`}>{r.outcome}</td>
                <td>{r.app ? <a href={`/apps/${encodeURIComponent(r.app)}`} onClick={onLink}>{r.app}</a> : '—'}</td>
                <td>
                  {r.action}
                  {r.count && r.count > 1 ? ` ×${r.count}` : ''}
                </td>
                <td class="muted small">
                  {r.error || (r.content ? JSON.stringify(r.content) : '')}
                  {r.diff ? <pre class="diff">{r.diff}</pre> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
