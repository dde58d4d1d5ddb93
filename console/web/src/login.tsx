import { useState } from 'preact/hooks';
import { api, type SessionInfo } from './api';

export function LoginPage({ notice, onSignedIn }: { notice: string; onSignedIn: (s: SessionInfo) => void }) {
  const [token, setToken] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      onSignedIn(await api.login(token.trim()));
    } catch (x: any) {
      setErr(x.status === 401 ? 'That token is not one of this graylane’s tokens.' : x.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form class="login-box" onSubmit={submit}>
        <div class="brand brand-login">
          <img src="/favicon.svg" alt="" width="28" height="28" />
          graylane
        </div>
        <h1>Sign in</h1>
        <p class="muted">Use one of the API tokens configured in <code>http.tokens</code>. A read token can look; a write token can also release.</p>
        {notice && <p class="notice" role="status">{notice}</p>}
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required autofocus />
        {err && <p class="error" role="alert">{err}</p>}
        <button class="btn btn-primary" type="submit" disabled={busy || !token.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">The console keeps a session cookie (HttpOnly, SameSite=Strict) until it expires (<code>http.sessionTTL</code>, 12 hours by default) or you sign out.</p>
      </form>
    </main>
  );
}
