import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setEnv, setSession, type Health, type SessionInfo } from './api';
import { navigate, onLink, useLocation } from './router';
import { AppsPage } from './list';
import type { AppPage as AppPageType } from './app';
import { LoginPage } from './login';
import { AuditPage, StatsPage } from './records';
import { EnvironmentListPage, EnvironmentsPage } from './envs';
import './style.css';

function Header({ session, onLogout }: { session: SessionInfo; onLogout: () => void }) {
  const [health, setHealth] = useState<Health | null>(null);
  useEffect(() => {
    let stop = false;
    const load = () =>
      api
        .health()
        .then((h) => !stop && setHealth(h))
        .catch(() => !stop && setHealth(null));
    load();
    const t = setInterval(load, 5000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, []);
  const ok = health?.ready;
  return (
    <header class="top">
      <div class="top-inner">
        <a href="/" onClick={onLink} class="brand" aria-label="graylane: all apps">
          <img src="/favicon.svg" alt="" width="22" height="22" />
          graylane
        </a>
        <div class="top-status" aria-live="polite">
          <span class={`pill ${health ? (ok ? 'pill-ok' : 'pill-bad') : 'pill-unknown'}`} title={health?.error || (ok ? 'every config centre answers' : '')}>
            <span class="dot" aria-hidden="true" />
            {health ? `${health.source} ${ok ? 'ready' : 'unavailable'}` : 'checking…'}
          </span>
          {health && <span class="pill pill-plain" title="this graylane reconciles (leader) or only serves the API (standby)">{health.role}</span>}
          <span class="muted version" title="graylane version">{/^\d/.test(session.version) ? `v${session.version}` : session.version}</span>
        </div>
        <nav class="top-nav" aria-label="Records">
          {session.envs?.length ? (
            <a href="/environments" onClick={onLink}>
              Environments
            </a>
          ) : null}
          <a href="/stats" onClick={onLink}>
            Statistics
          </a>
          <a href="/audit" onClick={onLink}>
            Audit log
          </a>
        </nav>
        <div class="top-user">
          {session.authRequired ? (
            <>
              <span class="user" data-testid="user">
                {session.user}
                <span class={`role role-${session.role}`}>{session.role === 'read' ? 'read-only' : session.role}</span>
              </span>
              <button class="btn btn-ghost btn-small" onClick={onLogout}>
                Sign out
              </button>
            </>
          ) : (
            <span class="user" title="graylane has no API tokens: everyone who reaches it may change releases">
              no sign-in (open API)
            </span>
          )}
        </div>
      </div>
    </header>
  );
}

// The app page (with the YAML editor and charts) is loaded on first use,
// so the apps list's first screen loads only what it needs.
let appPage: typeof AppPageType | null = null;
function LazyAppPage(props: Parameters<typeof AppPageType>[0]) {
  const [C, setC] = useState<typeof AppPageType | null>(() => appPage);
  const [err, setErr] = useState('');
  useEffect(() => {
    if (C) return;
    import('./app')
      .then((m) => {
        appPage = m.AppPage;
        setC(() => m.AppPage);
      })
      .catch((e) => setErr(String(e)));
  }, []);
  if (err) return <p class="error page">Could not load the page: {err}</p>;
  return C ? <C {...props} /> : <div class="page muted">Loading…</div>;
}

function Root() {
  const loc = useLocation();
  const [session, setSess] = useState<SessionInfo | null>(null);
  const [notice, setNotice] = useState('');

  const refresh = () =>
    api
      .session()
      .then((s) => {
        setSess(s);
        setSession(s.csrf ?? '', (msg) => {
          setNotice(msg);
          setSess((cur) => (cur ? { ...cur, authenticated: false } : cur));
        });
        if (s.error) setNotice(s.error);
      })
      .catch((e) => setNotice(String(e.message ?? e)));
  useEffect(() => {
    refresh();
  }, []);

  if (!session) return <div class="loading">Loading…</div>;
  if (!session.authenticated) {
    return (
      <LoginPage
        notice={notice}
        onSignedIn={(s) => {
          setNotice('');
          setSess(s);
          setSession(s.csrf ?? '', (msg) => {
            setNotice(msg);
            setSess((cur) => (cur ? { ...cur, authenticated: false } : cur));
          });
          if (loc.path === '/login') navigate(loc.search.get('next') || '/', true);
        }}
      />
    );
  }
  const logout = () => api.logout().finally(() => {
    setNotice('You signed out.');
    setSess({ ...session, authenticated: false, user: undefined, csrf: undefined });
  });
  // /envs/{env}/... is the same page in environment env
  const em = loc.path.match(/^\/envs\/([^/]+)(\/.*)?$/);
  const env = em ? decodeURIComponent(em[1]) : '';
  const path = em ? em[2] || '/' : loc.path;
  setEnv(env);
  const m = path.match(/^\/apps\/([^/]+)\/?$/);
  const ae = path.match(/^\/apps\/([^/]+)\/environments\/?$/);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <Header session={session} onLogout={logout} />
      <main id="main" tabIndex={-1}>
        {m ? (
          <LazyAppPage key={env + '/' + m[1]} app={decodeURIComponent(m[1])} session={session} />
        ) : ae ? (
          <EnvironmentsPage key={ae[1]} app={decodeURIComponent(ae[1])} session={session} />
        ) : path === '/environments' ? (
          <EnvironmentListPage session={session} />
        ) : loc.path === '/stats' ? (
          <StatsPage />
        ) : loc.path === '/audit' ? (
          <AuditPage search={loc.search} />
        ) : (
          <AppsPage key={env} />
        )}
      </main>
    </>
  );
}

render(<Root />, document.getElementById('root')!);
