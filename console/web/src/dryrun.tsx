/** DryRunView shows what a change would do, with nothing written: the
 * document's diff, the plan step by step and the config writes (the
 * answer of PUT /api/v1/apps/{app}?dryRun=true or .../version?dryRun=true). */
import type { DryRun } from './api';
import { duration, weightList } from './format';

export function DryRunView({ r, showDiff }: { r: DryRun; showDiff?: boolean }) {
  const writes = r.config?.writes?.filter((w) => w.action !== 'unchanged') ?? [];
  return (
    <div class="dry-run" data-testid="dry-run">
      <p class="muted small">Dry-run (nothing written): {r.plan?.note ?? 'the plan, step by step.'}</p>
      {showDiff && (
        <>
          <p class="muted small">{r.diff ? `The document in ${r.centre} would change:` : `The document in ${r.centre} would not change.`}</p>
          {r.diff && (
            <pre class="diff" data-testid="dry-run-diff">
              {r.diff}
            </pre>
          )}
        </>
      )}
      {r.plan && r.plan.steps.length > 0 && (
        <table class="mini">
          <thead>
            <tr>
              <th scope="col">after</th>
              <th scope="col">phase</th>
              <th scope="col">instances</th>
              <th scope="col">weights</th>
            </tr>
          </thead>
          <tbody>
            {r.plan.steps.map((s, i) => (
              <tr key={i}>
                <td>{duration(s.after / 1e6)}</td>
                <td>{s.phase}</td>
                <td>
                  {Object.entries(s.replicas)
                    .map(([k, n]) => `${k}×${n}`)
                    .join(' ')}
                </td>
                <td>
                  {weightList(s.weights, r.plan!.to, r.plan!.from)
                    .map(([k, n]) => `${k} ${n}%`)
                    .join(' · ')}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {r.config && (
        <p class="muted small">
          Config {r.config.identity} ({r.config.binding}): {writes.length} write{writes.length === 1 ? '' : 's'} to config targets.
        </p>
      )}
      {showDiff &&
        writes.map((w, i) => (
          <details key={i} class="config-write">
            <summary>
              {w.action} {w.label ?? w.file} in {w.centre} ({w.when})
            </summary>
            {w.error ? <p class="error">{w.error}</p> : <pre class="diff">{w.diff ?? ''}</pre>}
          </details>
        ))}
    </div>
  );
}
