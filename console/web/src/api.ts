// The graylane API as the console uses it: the same routes as the CLI and
// curl, authenticated by the session cookie, with the session's CSRF token
// on every change.

export type Phase = 'Progressing' | 'Paused' | 'Healthy' | 'Degraded' | 'RolledBack' | '';

export const PHASES: Phase[] = ['Progressing', 'Paused', 'Healthy', 'Degraded', 'RolledBack'];

export interface VersionCount { version: string; ready: number; total: number }

export interface Summary {
  app: string;
  version: string;
  phase: Phase;
  stableVersion: string;
  canaryVersion?: string;
  step: number;
  totalSteps: number;
  weights?: Record<string, number>;
  ready: number;
  instances: number;
  versions?: VersionCount[];
  strategy?: string;
  backend?: string;
  source: string;
  sourceReady: boolean;
  message?: string;
  specError?: string;
  lastError?: string;
  drift?: number;
  attention?: string[];
  updatedAt: string;
}

export interface Counts { all: number; phases: Record<string, number>; attention: number }

export interface AppList {
  apps: Summary[];
  continue?: string;
  total: number;
  counts: Counts;
  limit: number;
  seq: number;
}

export interface Changes {
  seq: number;
  reset?: boolean;
  changed?: Summary[];
  removed?: string[];
  counts: Counts;
}

export interface Instance {
  id: string;
  version: string;
  addr?: string;
  ready: boolean;
  message?: string;
  meta?: Record<string, string>;
}

export interface Step {
  setWeight?: number;
  pause?: { duration?: string };
  setCanaryScale?: { replicas?: number; weight?: number; matchTrafficWeight?: boolean };
  analysis?: { checks?: string[]; count?: number };
}

export interface Bound { min?: number; max?: number }

export interface Check {
  name: string;
  http?: Bound & { url: string; jsonPath?: string };
  prometheus?: Bound & { address: string; query: string };
}

export interface Spec {
  app: string;
  version: string;
  replicas?: number;
  strategy: {
    type: string;
    steps?: Step[];
    analysis?: { checks: Check[] };
    scaleDownDelay?: string;
    progressDeadline?: string;
  };
  backend: { type: string };
  traffic?: { type?: string };
  config?: unknown;
}

export interface CheckRun { at: string; ok: boolean; message?: string; value?: number }

export interface Drift {
  placement: { centre: string; file: string; role: string; location?: unknown };
  identity: string;
  want: string;
  got: string;
  diff?: string;
  since: string;
}

export interface ConfigView {
  identity: string;
  layout: { stableIdentity?: string; stableDigest?: string; grayIdentity?: string; grayDigest?: string };
  gate?: { waiting?: string; stableDigest?: string; placed?: Record<string, boolean>; loaded?: Record<string, number>; verify?: boolean };
  placements: { centre: string; file: string; role: string; identity: string; want: string; verified: boolean; error?: string }[];
  pending?: unknown;
  drift?: Drift[];
  error?: string;
}

export interface Status {
  phase: Phase;
  message?: string;
  stableVersion?: string;
  canaryVersion?: string;
  step: number;
  stepStartedAt?: string;
  paused?: boolean;
  previousVersion?: string;
  rejectedVersion?: string;
  weights?: Record<string, number>;
  observedWeights?: Record<string, number>;
  preview?: string;
  history?: { version: string; outcome: string; at: string }[];
  totalSteps: number;
  instances: Instance[] | null;
  observedRevision: number;
  specError?: { error: string; field?: string; revision?: number };
  lastError?: string;
  lastCommand?: { id: string; command: string; error?: string };
  analysis?: Record<string, { version: string; runs: CheckRun[] }>;
  config?: ConfigView;
  source: { name: string; ready: boolean; error?: string };
  updatedAt: string;
}

export interface Action { name: string; allowed: boolean; reason?: string }

export interface AppDetail {
  app: string;
  spec?: Spec;
  documentVersion?: string;
  status: Status;
  actions: Action[];
}

export interface EventView {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  app: string;
  time: string;
}

export interface SessionInfo {
  authRequired: boolean;
  authenticated: boolean;
  user?: string;
  role?: 'read' | 'write' | 'request' | 'approve' | 'release' | 'admin' | '';
  environments?: Record<string, string>;
  /** the declared environments in order (none: no environments) */
  envs?: string[];
  csrf?: string;
  expiresAt?: string;
  error?: string;
  version: string;
}

export interface Health { ready: boolean; role: string; source: string; error?: string }

export interface FieldMsg { field?: string; message: string }

export interface SpecDoc { app: string; document: string; documentVersion: string; centre: string }

export interface GrayDoc {
  rules: { name?: string; version: string; match?: unknown }[];
  split: { version: string; weight: number }[];
  preview?: string;
  canary?: string;
  stable?: string;
  generation: number;
}

export interface Revision {
  app: string;
  number: number;
  kind: 'release' | 'rollback' | 'adopted';
  version: string;
  identity: string;
  config?: { identity: string; digest: string; files: { name: string; format: string; sha256: string; bytes: number }[] };
  cause: { kind: string; actor?: string; via?: string; action?: string; centre?: string; documentVersion?: string; rollbackTo?: number };
  rollbackTo?: number;
  replaces?: number;
  strategy: string;
  fast?: boolean;
  seenAt: string;
  startedAt: string;
  endedAt?: string;
  outcome?: string;
  reason?: string;
}

export interface DryRun {
  dryRun: boolean;
  valid: boolean;
  centre: string;
  documentVersion?: string;
  diff: string;
  errors?: FieldMsg[];
  plan?: { from?: string; to: string; strategy: string; note?: string; steps: { after: number; phase: string; step: number; replicas: Record<string, number>; weights?: Record<string, number> }[] };
  config?: { identity: string; binding: string; writes: { action: string; when: string; centre?: string; file?: string; label?: string; diff?: string; error?: string }[] };
}

export interface Durations { count: number; medianSeconds: number; p90Seconds: number }

export interface Stats {
  window: string;
  started: number;
  promoted: number;
  aborted: number;
  rolledBack: number;
  superseded: number;
  failed: number;
  inProgress: number;
  rollbacks: number;
  leadTime: Durations;
  timeToRestore: Durations;
  changeFailureRate: number;
}

export interface AuditRecord {
  id: string;
  time: string;
  actor: string;
  via: string;
  source?: string;
  action: string;
  app?: string;
  outcome: 'allowed' | 'denied' | 'failed';
  error?: string;
  content?: Record<string, unknown>;
  count?: number;
  diff?: string;
}

/** ApiError is a failed API call, with the answer put in words. */
/** errorText is what the console shows for a failed call: the API's
 * message, or the error itself. */
export function errorText(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly field?: string,
    readonly errors?: FieldMsg[],
    readonly answer?: any,
  ) {
    super(describe(status, detail));
  }
}

function describe(status: number, detail: string): string {
  switch (status) {
    case 400:
      return `Not accepted: ${detail}`;
    case 401:
      return `Not signed in: ${detail}`;
    case 403:
      return `Not allowed: ${detail}`;
    case 404:
      return `Not found: ${detail}`;
    case 409:
      return `Refused: ${detail}`;
    case 412:
      return 'Someone changed this spec since you loaded it. Reload to see their change, then edit again.';
    case 405:
      return `Not possible here: ${detail}`;
    case 503:
      return `graylane is not ready: ${detail}`;
    case 0:
      return `graylane did not answer: ${detail}`;
  }
  return `graylane answered ${status}: ${detail}`;
}

let csrf = '';
let onUnauthorized: (msg: string) => void = () => {};

/** setSession remembers the CSRF token and what to do on a 401. */
export function setSession(token: string, unauthorized: (msg: string) => void) {
  csrf = token;
  onUnauthorized = unauthorized;
}

export async function call<T>(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<T> {
  const h: Record<string, string> = { Accept: 'application/json', ...headers };
  if (method !== 'GET' && csrf) h['X-CSRF-Token'] = csrf;
  if (body !== undefined && !h['Content-Type']) h['Content-Type'] = 'application/json';
  let resp: Response;
  try {
    resp = await fetch(path, { method, body, headers: h, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, String(e));
  }
  const text = await resp.text();
  let data: any = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    const detail = (data && data.error) || text || resp.statusText;
    const err = new ApiError(resp.status, detail, data?.field, data?.errors, data);
    if (resp.status === 401) onUnauthorized(detail);
    throw err;
  }
  return data as T;
}

const enc = encodeURIComponent;

// The environment the console's app pages show ('' is the default one):
// its API is /api/v1/envs/{env}/..., its pages /envs/{env}/apps/{app}.
let env = '';

/** setEnv picks the environment the app pages and the list show. */
export function setEnv(e: string) {
  env = e;
}

/** currentEnv is the environment picked ('' for the default one). */
export function currentEnv(): string {
  return env;
}

/** apiPath is an app API path in the current environment. */
export function apiPath(path: string): string {
  return env ? `/api/v1/envs/${enc(env)}${path}` : `/api/v1${path}`;
}

/** appHref is the console page of app in environment e (default: the current one). */
export function appHref(app: string, e: string = env): string {
  return e ? `/envs/${enc(e)}/apps/${enc(app)}` : `/apps/${enc(app)}`;
}

export interface Rules {
  from?: string;
  soak?: string;
  approvals?: number;
  approvalTTL?: string;
  windows?: string[];
  autoPromote?: boolean;
  requireAnalysis?: string[];
}

export interface Freeze { env: string; reason: string; by: string; at: string }

export interface EnvSummary { name: string; default?: boolean; centre: string; rules: Rules; frozen?: Freeze; next?: string[] }

export interface Run {
  bundle: string;
  version: string;
  identity: string;
  configDigest?: string;
  healthySince: string;
  analysis?: string;
  analysisDetail?: string;
  revision?: number;
}

export interface Refusal { rule: string; reason: string }

export interface Verdict {
  allowed: boolean;
  refusals?: Refusal[];
  candidate?: Run;
  approvals: number;
  needed: number;
  approvedBy?: string[];
  retryAt?: string;
}

export interface PromotionRequest {
  id: string;
  env: string;
  app: string;
  from: string;
  bundle: string;
  version: string;
  requestedBy: string;
  requestedAt: string;
  approvals?: { by: string; at: string; expires: string; bundle: string }[];
  state: string;
  rule?: string;
  reason?: string;
  promotedAt?: string;
}

export interface AppEnv extends EnvSummary {
  present: boolean;
  phase?: Phase;
  message?: string;
  version?: string;
  identity?: string;
  bundle?: Run;
  desired?: string;
  failed?: { bundle: string; version: string; analysis?: boolean; reason: string; at: string };
  reported?: Record<string, number>;
  promotion?: Verdict;
  request?: PromotionRequest;
}

export interface Board { environments: EnvSummary[]; apps: { app: string; environments: AppEnv[] }[] }

export interface PromoteResult {
  outcome: 'promoted' | 'pending' | 'refused' | 'approved';
  env: string;
  app: string;
  from?: string;
  rule?: string;
  reason?: string;
  verdict?: Verdict;
  request?: PromotionRequest;
}

/** envCall is a promote or approve: 409 and 202 are answers, not errors. */
async function envCall(app: string, e: string, action: 'promote' | 'approve'): Promise<PromoteResult> {
  try {
    return await call<PromoteResult>('POST', `/api/v1/apps/${enc(app)}/environments/${enc(e)}/${action}`, '{}');
  } catch (err) {
    if (err instanceof ApiError && err.status === 409 && err.answer?.outcome) return err.answer as PromoteResult;
    throw err;
  }
}

export const api = {
  session: () => call<SessionInfo>('GET', '/api/v1/session'),
  login: (token: string) => call<SessionInfo>('POST', '/api/v1/session', JSON.stringify({ token })),
  logout: () => call<SessionInfo>('DELETE', '/api/v1/session'),
  health: () => call<Health>('GET', '/api/v1/health'),
  list: (q: URLSearchParams) => call<AppList>('GET', apiPath('/apps?') + q.toString()),
  app: (app: string) => call<AppDetail>('GET', apiPath(`/apps/${enc(app)}`)),
  spec: (app: string) => call<SpecDoc>('GET', apiPath(`/apps/${enc(app)}/spec`)),
  gray: (app: string) => call<GrayDoc>('GET', apiPath(`/apps/${enc(app)}/gray`)),
  validate: (app: string, doc: string) =>
    call<{ valid: boolean; errors?: FieldMsg[] }>('POST', apiPath(`/apps/${enc(app)}/validate`), doc, { 'Content-Type': 'application/yaml' }),
  save: (app: string, doc: string, ifMatch: string) =>
    call<{ documentVersion: string }>('PUT', apiPath(`/apps/${enc(app)}`), doc, { 'Content-Type': 'application/yaml', 'If-Match': ifMatch }),
  setVersion: (app: string, version: string) =>
    call<{ documentVersion: string }>('PUT', apiPath(`/apps/${enc(app)}/version`), JSON.stringify({ version })),
  command: (app: string, cmd: string) => call<AppDetail>('POST', apiPath(`/apps/${enc(app)}/${enc(cmd)}`)),
  dryRunSpec: (app: string, doc: string) =>
    call<DryRun>('PUT', apiPath(`/apps/${enc(app)}?dryRun=true`), doc, { 'Content-Type': 'application/yaml' }),
  dryRunVersion: (app: string, version: string) => call<DryRun>('PUT', apiPath(`/apps/${enc(app)}/version?dryRun=true`), JSON.stringify({ version })),
  revisions: (app: string) => call<{ app: string; revisions: Revision[] }>('GET', apiPath(`/apps/${enc(app)}/revisions`)),
  rollbackTo: (app: string, revision: number) =>
    call<{ revision: number; version: string; mode: string }>('POST', apiPath(`/apps/${enc(app)}/rollback`), JSON.stringify({ revision })),
  stats: () => call<{ windows: Record<string, { all: Stats; apps: Record<string, Stats> }> }>('GET', '/api/v1/stats'),
  audit: (q: URLSearchParams) => call<{ records: AuditRecord[] }>('GET', '/api/v1/audit?' + q.toString()),
  environments: () => call<{ environments: EnvSummary[] }>('GET', '/api/v1/environments'),
  pipeline: () => call<Board>('GET', '/api/v1/pipeline'),
  appEnvironments: (app: string) => call<{ app: string; environments: AppEnv[] }>('GET', `/api/v1/apps/${enc(app)}/environments`),
  promoteEnv: (app: string, e: string) => envCall(app, e, 'promote'),
  approveEnv: (app: string, e: string) => envCall(app, e, 'approve'),
  freeze: (e: string, reason: string) => call<Freeze>('PUT', `/api/v1/environments/${enc(e)}/freeze`, JSON.stringify({ reason })),
  unfreeze: (e: string) => call<{ env: string }>('DELETE', `/api/v1/environments/${enc(e)}/freeze`),
};
