import type { Phase } from './api';

export function ago(iso: string | undefined, now: number): string {
  if (!iso || iso.startsWith('0001-')) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ago`;
  return `${Math.floor(h / 24)}d ago`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** parseDuration reads a Go duration ("30s", "1m30s", "2h"). */
export function parseDuration(d: string | undefined): number {
  if (!d) return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let ms = 0;
  for (const m of d.matchAll(re)) {
    const n = parseFloat(m[1]);
    ms += n * ({ ms: 1, s: 1000, m: 60000, h: 3600000 } as Record<string, number>)[m[2]];
  }
  return ms;
}

export const phaseLabel = (p: Phase) => (p === '' ? 'Pending' : p === 'RolledBack' ? 'Rolled back' : p);

export const attentionLabel: Record<string, string> = {
  paused: 'Waiting for a human',
  degraded: 'Degraded',
  rolledBack: 'Rolled back',
  invalidSpec: 'Invalid spec',
  configDrift: 'Config drift',
  centreDown: 'Centre down',
  error: 'Reconcile error',
};

/** weightList orders a weights map: the canary first, then stable, then others. */
export function weightList(w: Record<string, number> | undefined, canary?: string, stable?: string): [string, number][] {
  const rank = (v: string) => (v === canary ? 0 : v === stable ? 1 : 2);
  return Object.entries(w ?? {}).sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
}

export const short = (s: string | undefined, n = 8) => (s ? (s.length > n ? s.slice(0, n) : s) : '—');
