import { useEffect, useState } from 'preact/hooks';

// A three-route router on the History API: /, /apps/{app} and /login.
// graylane answers index.html for every such path.

export function navigate(to: string, replace = false) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.dispatchEvent(new Event('graylane:navigate'));
  window.scrollTo(0, 0);
}

export function useLocation(): { path: string; search: URLSearchParams } {
  const read = () => ({ path: location.pathname, search: new URLSearchParams(location.search) });
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const on = () => setLoc(read());
    window.addEventListener('popstate', on);
    window.addEventListener('graylane:navigate', on);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener('graylane:navigate', on);
    };
  }, []);
  return loc;
}

/** onLink makes a plain <a href> navigate inside the page (keeping
 * ctrl/cmd-click and middle-click for a new tab). */
export function onLink(e: MouseEvent) {
  const a = (e.currentTarget as HTMLAnchorElement);
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href') || '/');
}
