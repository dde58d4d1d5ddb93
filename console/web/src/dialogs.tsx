// The app page's actions: what each does, and the dialogs that confirm
// them.
import { useState } from 'preact/hooks';
import { api, type AppDetail, type DryRun, type SessionInfo, errorText } from './api';
import { Dialog } from './components';
import { DryRunView } from './dryrun';
import { weightList } from './format';

export interface ActionInfo {
  label: string;
  effect: string;
  danger?: boolean;
}

export const ACTIONS: Record<string, ActionInfo> = {
  'set-version': { label: 'Set version…', effect: '' },
  promote: { label: 'Promote', effect: 'Skips the current step: a pause ends now, a blue-green switches now.' },
  'promote-full': { label: 'Promote full', effect: 'Skips every remaining step: the new version is scaled to full size and gets all traffic now.', danger: true },
  pause: { label: 'Pause', effect: 'Holds the release where it is. Traffic does not move until you resume. A timed pause step keeps counting.' },
  resume: { label: 'Resume', effect: 'Continues the release: undoes a pause, continues a pause step that waits for a human, or retries a rejected version.' },
  abort: { label: 'Abort', effect: 'Sends all traffic back to the stable version and scales the new one to zero. The phase becomes Degraded.', danger: true },
  rollback: { label: 'Rollback', effect: 'During a rollout: as Abort, phase RolledBack. After a promotion: back to the previous version without running steps.', danger: true },
};

export function ConfirmDialog({ d, name, onClose, onDone }: { d: AppDetail; name: string; onClose: () => void; onDone: (v?: AppDetail) => void; session: SessionInfo }) {
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
      setErr(errorText(e));
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

export function SetVersionDialog({ d, onClose, centre }: { d: AppDetail; onClose: () => void; centre: string }) {
  const [v, setV] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const [done, setDone] = useState('');
  const [plan, setPlan] = useState<DryRun | null>(null);
  const strat = d.spec?.strategy;
  const preview = async () => {
    setBusy(true);
    setErr('');
    try {
      setPlan(await api.dryRunVersion(d.app, v));
    } catch (x) {
      setErr(errorText(x));
    } finally {
      setBusy(false);
    }
  };
  const valid = /^[A-Za-z0-9._+-]{1,128}$/.test(v);
  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const r = await api.setVersion(d.app, v);
      setDone(`Written: version ${v} is in ${centre} (document version ${r.documentVersion}). graylane rolls it out now.`);
    } catch (x) {
      setErr(errorText(x));
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
          {plan && <DryRunView r={plan} />}
          {err && (
            <p class="error" role="alert">
              {err}
            </p>
          )}
          <div class="dialog-buttons">
            <button type="button" class="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="button" class="btn" onClick={preview} disabled={busy || !valid || v === d.spec?.version} data-preview>
              Preview
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
