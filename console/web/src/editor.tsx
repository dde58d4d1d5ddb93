import { useEffect, useRef, useState } from 'preact/hooks';
import { EditorState, Compartment } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter } from '@codemirror/language';
import { yaml } from '@codemirror/lang-yaml';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';
import { isMap, isScalar, isSeq, parseDocument, type Node as YNode } from 'yaml';
import { api, ApiError, type DryRun, type FieldMsg, type SpecDoc, errorText } from './api';
import { DryRunView } from './dryrun';

/** pathOf splits a field path ("strategy.steps[2].setWeight"). */
export function pathOf(field: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of field.split('.')) {
    const m = part.match(/^([^[\]]*)((?:\[\d+\])*)$/);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1]) out.push(m[1]);
    for (const i of m[2].matchAll(/\[(\d+)\]/g)) out.push(Number(i[1]));
  }
  return out;
}

/**
 * rangeOf finds where a field path is in a YAML document (the yaml
 * package keeps every node's offsets): the value when it exists, else its
 * key, else the nearest parent that exists.
 */
export function rangeOf(text: string, field: string | undefined): [number, number] {
  if (!field) return [0, Math.min(text.length, text.indexOf('\n') < 0 ? text.length : text.indexOf('\n'))];
  const doc = parseDocument(text, { keepSourceTokens: false });
  let node: YNode | null = doc.contents as YNode | null;
  let best: [number, number] = [0, 0];
  for (const key of pathOf(field)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(key));
      if (!pair) break;
      if (isScalar(pair.key) && pair.key.range) best = [pair.key.range[0], pair.key.range[1]];
      node = pair.value as YNode | null;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as YNode | undefined;
      if (!item) break;
      node = item;
    } else {
      break;
    }
    if (node && (node as any).range) {
      const r = (node as any).range as [number, number, number];
      best = [r[0], r[1]];
    }
  }
  if (best[1] <= best[0]) best[1] = Math.min(text.length, best[0] + 1);
  return best;
}

export function SpecEditor({ app, canEdit, reason, onSaved }: { app: string; canEdit: boolean; reason?: string; onSaved: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const ro = useRef(new Compartment());
  const [doc, setDoc] = useState<SpecDoc | null>(null);
  const [editing, setEditing] = useState(false);
  const [dirty, setDirty] = useState(false);
  const [errors, setErrors] = useState<FieldMsg[]>([]);
  const [msg, setMsg] = useState('');
  const [fail, setFail] = useState('');
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<DryRun | null>(null);

  const load = async () => {
    try {
      const d = await api.spec(app);
      setDoc(d);
      setFail('');
      const v = view.current;
      if (v) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: d.document } });
      setDirty(false);
    } catch (e) {
      setFail(errorText(e));
    }
  };

  useEffect(() => {
    if (!host.current) return;
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: '',
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          foldGutter(),
          drawSelection(),
          history(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          yaml(),
          lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.contentAttributes.of({ 'aria-label': `release spec of ${app} (YAML)` }),
          ro.current.of([EditorState.readOnly.of(true), EditorView.editable.of(false)]),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) setDirty(true);
          }),
        ],
      }),
    });
    view.current = v;
    load();
    return () => v.destroy();
  }, [app]);

  useEffect(() => {
    view.current?.dispatch({
      effects: ro.current.reconfigure(editing ? [] : [EditorState.readOnly.of(true), EditorView.editable.of(false)]),
    });
    if (editing) view.current?.focus();
  }, [editing]);

  const showErrors = (errs: FieldMsg[]) => {
    setErrors(errs);
    const v = view.current;
    if (!v) return;
    const text = v.state.doc.toString();
    const diags: Diagnostic[] = errs.map((e) => {
      const [from, to] = rangeOf(text, e.field);
      return { from, to, severity: 'error', message: e.field ? `${e.field}: ${e.message}` : e.message, source: 'graylane' };
    });
    v.dispatch(setDiagnostics(v.state, diags));
  };

  const text = () => view.current?.state.doc.toString() ?? '';

  const validate = async (): Promise<boolean> => {
    setMsg('');
    try {
      const r = await api.validate(app, text());
      showErrors(r.errors ?? []);
      if (r.valid) setMsg('Valid: graylane accepts this spec.');
      return r.valid;
    } catch (e) {
      setFail(errorText(e));
      return false;
    }
  };

  // preview asks graylane what saving would do (PUT ?dryRun=true): the
  // diff against the centre's document, the plan and each config write;
  // an invalid spec answers its field errors, shown in the editor
  const previewSave = async () => {
    setBusy(true);
    setFail('');
    setMsg('');
    setPreview(null);
    try {
      const r = await api.dryRunSpec(app, text());
      showErrors(r.errors ?? []);
      setPreview(r);
    } catch (e) {
      if (e instanceof ApiError && e.errors?.length) showErrors(e.errors);
      setFail(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const save = async () => {
    if (!doc) return;
    setPreview(null);
    setBusy(true);
    setFail('');
    try {
      if (!(await validate())) return;
      const r = await api.save(app, text(), doc.documentVersion);
      setMsg(`Saved to ${doc.centre} as document version ${r.documentVersion}. graylane picks it up from there.`);
      setEditing(false);
      await load();
      onSaved();
    } catch (e) {
      if (e instanceof ApiError && e.errors?.length) showErrors(e.errors);
      setFail(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="spec">
      <div class="spec-bar">
        <span class="muted">
          {doc ? (
            <>
              in <strong>{doc.centre}</strong>, document version <code data-testid="doc-version">{doc.documentVersion}</code>
            </>
          ) : (
            'loading…'
          )}
        </span>
        <span class="spec-buttons">
          {!editing ? (
            <button class="btn btn-small" aria-disabled={!canEdit} title={canEdit ? 'Edit the spec; saving validates it and writes it with If-Match' : reason} onClick={() => (canEdit ? (setMsg(''), setEditing(true)) : setFail(`Editing is not possible: ${reason}`))}>
              Edit
            </button>
          ) : (
            <>
              <button class="btn btn-small" onClick={validate} disabled={busy}>
                Validate
              </button>
              <button class="btn btn-small" onClick={previewSave} disabled={busy || !dirty} data-preview-spec title="What saving would do, with nothing written: the diff, the plan and the config writes">
                Preview
              </button>
              <button class="btn btn-small btn-primary" onClick={save} disabled={busy || !dirty}>
                {busy ? 'Saving…' : 'Save'}
              </button>
              <button
                class="btn btn-small btn-ghost"
                onClick={() => {
                  setEditing(false);
                  setPreview(null);
                  showErrors([]);
                  setMsg('');
                  load();
                }}
              >
                Cancel
              </button>
            </>
          )}
        </span>
      </div>
      <div class="editor" ref={host} />
      {preview && editing && preview.valid && <DryRunView r={preview} showDiff />}
      {errors.length > 0 && (
        <ul class="field-errors" role="alert" aria-label="errors in the spec">
          {errors.map((e, i) => (
            <li key={i}>
              {e.field && <code class="field">{e.field}</code>} {e.message}
            </li>
          ))}
        </ul>
      )}
      {fail && (
        <p class="error" role="alert">
          {fail}
        </p>
      )}
      {msg && !fail && (
        <p class="ok-text" role="status">
          {msg}
        </p>
      )}
    </div>
  );
}
