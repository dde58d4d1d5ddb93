import ReconnectingEventSource from 'reconnecting-eventsource';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

/**
 * follow opens a Server-Sent Events stream that reconnects by itself
 * (reconnecting-eventsource: a dropped stream, a restarted graylane) and
 * calls the handlers with each message's parsed JSON. onOpen runs after
 * every (re)connection: the page reads its state again then, so nothing
 * missed while disconnected stays missing. The returned function closes it.
 */
export function follow(
  url: string,
  handlers: Record<string, (data: any) => void>,
  onState: (s: LiveState) => void,
): () => void {
  const es = new ReconnectingEventSource(url, { max_retry_time: 5000 });
  onState('connecting');
  es.onopen = () => onState('live');
  es.onerror = () => onState('reconnecting');
  for (const [kind, fn] of Object.entries(handlers)) {
    es.addEventListener(kind, (ev: MessageEvent) => {
      try {
        fn(JSON.parse(ev.data));
      } catch {
        // a malformed message is skipped; the next snapshot repairs it
      }
    });
  }
  return () => es.close();
}
