import { useEffect, useRef, useState } from 'preact/hooks';
import { api, apiPath, appHref, currentEnv, PHASES, type AppList, type Changes, type Counts, type Phase, type Summary, errorText } from './api';
import { AttentionTags, PhaseBadge, WeightsBar, versionClass } from './components';
import { ago, attentionLabel, phaseLabel } from './format';
import { follow, type LiveState } from './live';
import { navigate, onLink, useLocation } from './router';

const PAGE = 50;

interface Filter {
  phase: string;
  q: string;
  attention: string;
}

function readFilter(s: URLSearchParams): Filter {
  return { phase: s.get('phase') ?? '', q: s.get('q') ?? '', attention: s.get('attention') ?? '' };
}

function matches(f: Filter, s: Summary): boolean {
  if (f.phase && f.phase.split(',').every((p) => p !== s.phase)) return false;
  if (f.q && !s.app.toLowerCase().includes(f.q.toLowerCase())) return false;
  if (f.attention === 'true' && !s.attention?.length) return false;
  if (f.attention && f.attention !== 'true' && !s.attention?.includes(f.attention)) return false;
  return true;
}

function filterURL(f: Filter): string {
  const p = new URLSearchParams();
  if (f.phase) p.set('phase', f.phase);
  if (f.q) p.set('q', f.q);
  if (f.attention) p.set('attention', f.attention);
  const s = p.toString();
  const e = currentEnv();
  const base = e ? `/envs/${encodeURIComponent(e)}` : '/';
  return s ? `${base}?${s}` : base;
}

export function AppsPage() {
  const loc = useLocation();
  const filter = readFilter(loc.search);
  const fkey = filterURL(filter);
  const [list, setList] = useState<AppList | null>(null);
  const [counts, setCounts] = useState<Counts | null>(null);
  const [err, setErr] = useState('');
  const [live, setLive] = useState<LiveState>('connecting');
  const [now, setNow] = useState(Date.now());
  // tokens[i] is the continue token of page i (page 0 has none); a new
  // filter starts again at page 0
  const [pg, setPg] = useState<{ key: string; tokens: string[] }>({ key: fkey, tokens: [''] });
  const tokens = pg.key === fkey ? pg.tokens : [''];
  const setTokens = (t: string[]) => setPg({ key: fkey, tokens: t });
  const page = tokens.length - 1;
  const [search, setSearch] = useState(filter.q);
  const searchRef = useRef<HTMLInputElement>(null);

  const state = useRef({ filter, token: '', list: null as AppList | null, timer: 0, loading: false, again: false });
  state.current.filter = filter;
  state.current.token = tokens[page];
  state.current.list = list;

  const load = async () => {
    const st = state.current;
    if (st.loading) {
      st.again = true;
      return;
    }
    st.loading = true;
    try {
      const q = new URLSearchParams();
      const f = st.filter;
      if (f.phase) q.set('phase', f.phase);
      if (f.q) q.set('q', f.q);
      if (f.attention) q.set('attention', f.attention);
      q.set('limit', String(PAGE));
      if (st.token) q.set('continue', st.token);
      const l = await api.list(q);
      setList(l);
      setCounts(l.counts);
      setErr('');
    } catch (e) {
      setErr(errorText(e));
    } finally {
      st.loading = false;
      if (st.again) {
        st.again = false;
        schedule(150);
      }
    }
  };
  const schedule = (ms = 300) => {
    const st = state.current;
    if (st.timer) return;
    st.timer = window.setTimeout(() => {
      st.timer = 0;
      load();
    }, ms);
  };

  // a new filter or page: read again
  useEffect(() => {
    load();
  }, [fkey, tokens.length]);
  useEffect(() => setSearch(filter.q), [filter.q]);

  // live: apply each batch of changes to the rows shown; read the page
  // again when membership may have changed
  useEffect(() => {
    const stop = follow(
      apiPath('/events'),
      {
        apps: (ch: Changes) => {
          setCounts(ch.counts);
          const st = state.current;
          const cur = st.list;
          if (!cur || ch.reset || (!ch.changed && !ch.removed)) {
            schedule(0);
            return;
          }
          const rows = new Map(cur.apps.map((s) => [s.app, s]));
          const first = cur.apps[0]?.app ?? '';
          const last = cur.apps[cur.apps.length - 1]?.app ?? '';
          const full = !!cur.continue;
          let reread = false;
          let changed = false;
          for (const s of ch.changed ?? []) {
            const here = rows.has(s.app);
            const fits = matches(st.filter, s);
            if (here && fits) {
              rows.set(s.app, s);
              changed = true;
            } else if (here || (fits && (!full || s.app <= last) && (page === 0 || s.app >= first))) {
              reread = true;
            }
          }
          for (const a of ch.removed ?? []) if (rows.has(a)) reread = true;
          if (changed) setList({ ...cur, apps: cur.apps.map((s) => rows.get(s.app)!) });
          if (reread) schedule();
        },
      },
      (s) => {
        setLive(s);
        if (s === 'live') schedule(0);
      },
    );
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stop();
      clearInterval(tick);
    };
  }, []);

  // "/" focuses the search box
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key === '/' && !['INPUT', 'TEXTAREA'].includes(t.tagName) && !t.isContentEditable) {
        e.preventDefault();
        searchRef.current?.focus();
      }
    };
    window.addEventListener('keydown', key);
    return () => window.removeEventListener('keydown', key);
  }, []);

  useEffect(() => {
    if (search === filter.q) return;
    const t = setTimeout(() => navigate(filterURL({ ...filter, q: search }), true), 250);
    return () => clearTimeout(t);
  }, [search]);

  const setFilter = (f: Partial<Filter>) => navigate(filterURL({ ...filter, ...f }));
  const c = counts;
  const from = list && list.apps.length ? page * PAGE + 1 : 0;
  const to = list ? page * PAGE + list.apps.length : 0;

  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Apps</h1>
          <p class="muted">
            {c ? `${c.all.toLocaleString()} apps` : '…'}
            <span class={`live live-${live}`} title="updates arrive from graylane's event stream">
              <span class="dot" aria-hidden="true" />
              {live === 'live' ? 'live' : live === 'connecting' ? 'connecting' : 'reconnecting…'}
            </span>
          </p>
        </div>
        <div class="search">
          <label for="search" class="sr-only">
            Search apps by name
          </label>
          <input
            id="search"
            ref={searchRef}
            type="search"
            placeholder="Search apps   /"
            value={search}
            onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') navigate(filterURL({ ...filter, q: search }), true);
            }}
          />
        </div>
      </div>

      <nav class="filters" aria-label="Filter by phase">
        <button class={`chip ${!filter.phase && !filter.attention ? 'on' : ''}`} aria-pressed={!filter.phase && !filter.attention} onClick={() => setFilter({ phase: '', attention: '' })}>
          All <span class="n">{c?.all ?? '–'}</span>
        </button>
        {PHASES.map((p: Phase) => (
          <button key={p} class={`chip chip-${p} ${filter.phase === p ? 'on' : ''}`} aria-pressed={filter.phase === p} onClick={() => setFilter({ phase: filter.phase === p ? '' : p })}>
            {phaseLabel(p)} <span class="n">{c?.phases?.[p] ?? 0}</span>
          </button>
        ))}
        <span class="sep" aria-hidden="true" />
        <button
          class={`chip chip-attention ${filter.attention ? 'on' : ''}`}
          aria-pressed={!!filter.attention}
          title={Object.values(attentionLabel).join(', ')}
          onClick={() => setFilter({ attention: filter.attention ? '' : 'true' })}
        >
          Needs attention <span class="n">{c?.attention ?? 0}</span>
        </button>
      </nav>

      {err && (
        <p class="error" role="alert">
          {err}
        </p>
      )}

      <div class="table-wrap">
        <table class="apps" aria-busy={!list}>
          <thead>
            <tr>
              <th scope="col">App</th>
              <th scope="col">Phase</th>
              <th scope="col">Release</th>
              <th scope="col" class="col-traffic">Traffic</th>
              <th scope="col">Instances</th>
              <th scope="col" class="col-updated">Updated</th>
            </tr>
          </thead>
          <tbody>
            {list?.apps.map((s) => <Row key={s.app} s={s} now={now} />)}
            {list && list.apps.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  {c?.all ? 'No app matches these filters.' : 'No apps yet. Write a release spec to the config centre (graylane apply -f release.yaml) and it shows up here.'}
                </td>
              </tr>
            )}
            {!list && !err && (
              <tr>
                <td colSpan={6} class="empty">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>

      <div class="pager">
        <span class="muted">{list ? (list.total ? `${from.toLocaleString()}–${to.toLocaleString()} of ${list.total.toLocaleString()}` : '') : ''}</span>
        <span class="pager-buttons">
          <button class="btn btn-small" disabled={page === 0} onClick={() => setTokens(tokens.slice(0, -1))}>
            ← Previous
          </button>
          <button class="btn btn-small" disabled={!list?.continue} onClick={() => list?.continue && setTokens([...tokens, list.continue])}>
            Next →
          </button>
        </span>
      </div>
    </div>
  );
}

function Row({ s, now }: { s: Summary; now: number }) {
  const href = appHref(s.app);
  const step = s.canaryVersion && s.totalSteps > 0 ? `step ${Math.min(s.step + 1, s.totalSteps)}/${s.totalSteps}` : '';
  return (
    <tr data-app={s.app} data-phase={s.phase || 'Pending'}>
      <td class="col-app">
        <a href={href} onClick={onLink} class="app-link">
          {s.app}
        </a>
        <div class="sub">
          {[s.strategy, s.backend].filter(Boolean).join(' · ')}
          {s.source && (
            <span class={s.sourceReady ? '' : 'bad'} title={`config centre ${s.source}${s.sourceReady ? '' : ' is unavailable'}`}>
              {' '}
              · {s.source}
            </span>
          )}
        </div>
      </td>
      <td class="col-phase">
        <PhaseBadge phase={s.phase} />
        <AttentionTags reasons={s.attention?.filter((r) => r !== 'degraded' && r !== 'rolledBack')} />
      </td>
      <td class="col-release">
        {s.canaryVersion ? (
          <>
            <span class="ver v-stable">{s.stableVersion || '—'}</span> → <span class="ver v-canary">{s.canaryVersion}</span>
            {step && <div class="sub">{step}</div>}
          </>
        ) : (
          <>
            <span class="ver v-stable">{s.stableVersion || s.version || '—'}</span>
            {s.version && s.stableVersion && s.version !== s.stableVersion && <div class="sub">desired {s.version}</div>}
          </>
        )}
      </td>
      <td class="col-traffic">
        <WeightsBar weights={s.weights} canary={s.canaryVersion} stable={s.stableVersion} />
      </td>
      <td class="col-inst">
        <span class={s.ready < s.instances ? 'warn-text' : ''}>
          {s.ready}/{s.instances}
        </span>{' '}
        <span class="muted">ready</span>
        {(s.versions?.length ?? 0) > 1 && (
          <div class="sub">
            {s.versions!.map((v) => (
              <span key={v.version} class={`vc ${versionClass(v.version, s.canaryVersion, s.stableVersion)}`}>
                {v.version} {v.ready}/{v.total}
              </span>
            ))}
          </div>
        )}
      </td>
      <td class="col-updated muted" title={s.updatedAt}>
        {ago(s.updatedAt, now)}
      </td>
    </tr>
  );
}
