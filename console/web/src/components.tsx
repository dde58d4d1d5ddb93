import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { Phase } from './api';
import { attentionLabel, phaseLabel, weightList } from './format';

export function PhaseBadge({ phase }: { phase: Phase }) {
  return (
    <span class={`phase phase-${phase || 'Pending'}`} data-phase={phase || 'Pending'}>
      <span class="dot" aria-hidden="true" />
      {phaseLabel(phase)}
    </span>
  );
}

export function AttentionTags({ reasons }: { reasons?: string[] }) {
  if (!reasons?.length) return null;
  return (
    <span class="tags">
      {reasons.map((r) => (
        <span class={`tag tag-${r}`} key={r}>
          {attentionLabel[r] ?? r}
        </span>
      ))}
    </span>
  );
}

/** versionColor gives the canary, stable and any other version a colour. */
export function versionClass(v: string, canary?: string, stable?: string) {
  return v === canary ? 'v-canary' : v === stable ? 'v-stable' : 'v-other';
}

export function WeightsBar({ weights, canary, stable, label }: { weights?: Record<string, number>; canary?: string; stable?: string; label?: string }) {
  const list = weightList(weights, canary, stable).filter(([, w]) => w > 0);
  const text = list.map(([v, w]) => `${v} ${w}%`).join(' · ') || 'no traffic';
  return (
    <div class="weights" title={label ? `${label}: ${text}` : text}>
      <div class="bar" role="img" aria-label={`${label ?? 'traffic'}: ${text}`}>
        {list.map(([v, w]) => (
          <span key={v} class={`seg ${versionClass(v, canary, stable)}`} style={{ width: `${w}%` }} />
        ))}
      </div>
      <span class="weights-text">{text}</span>
    </div>
  );
}

/**
 * Dialog is a modal <dialog>: the browser traps focus in it and closes it
 * on Escape.
 */
export function Dialog({ open, title, onClose, children, wide }: { open: boolean; title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} class={wide ? 'wide' : ''} onClose={onClose} aria-labelledby="dialog-title">
      {open && (
        <div class="dialog-body">
          <h2 id="dialog-title">{title}</h2>
          {children}
        </div>
      )}
    </dialog>
  );
}

export function Card({ title, children, extra, id }: { title: string; children: ComponentChildren; extra?: ComponentChildren; id?: string }) {
  return (
    <section class="card" id={id} aria-labelledby={id ? `${id}-h` : undefined}>
      <header class="card-head">
        <h2 id={id ? `${id}-h` : undefined}>{title}</h2>
        {extra}
      </header>
      <div class="card-body">{children}</div>
    </section>
  );
}
