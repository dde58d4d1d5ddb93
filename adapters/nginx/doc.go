// Package nginx is graylane's nginx TrafficRouter: it splits an app's traffic
// between versions with nginx's own machinery and reloads nginx gracefully.
//
// Entry point: New, with a Config naming the include directory graylane owns
// and an InstanceSource (usually the app's adapters.Backend) whose ready
// instances become upstream servers.
//
// For each app the router renders one file, IncludeDir/{app}.conf (see
// Render for the exact routing):
//
//   - one upstream per routed version, its ready instances as servers and the
//     other versions' as backup servers;
//   - a split_clients block that hashes a sticky key (header, else cookie,
//     else $request_id) into the Split's cumulative weights, newest first;
//   - a map that sends X-Graylane-Version: <preview> to the preview version
//     and everything else to the split, exposed as $graylane_<app>;
//   - optionally a server block listening on traffic.nginx.listen that
//     proxies to $graylane_<app>, retrying the next server on errors;
//   - a status server on Config.StatusAddr answering the file's digest.
//
// SetWeights writes the file, runs `nginx -t` (restoring the previous file
// and returning nginx's message, wrapped in ErrRejected, if it fails),
// reloads nginx (SIGHUP to the pid file's master, or `nginx -s reload`),
// polls the status server until a fresh connection gets the new digest
// (proof that nginx's newest workers run the new file), then waits
// Config.Settle (150ms) because nginx lets the old workers accept for 100ms
// more. From then on every new connection follows the new split; requests
// already on an old worker's keep-alive connection finish there. If the
// digest never comes back (the master refused the reload, see its error
// log) the previous file is restored and nginx reloaded again
// (ErrNotVerified). Weights reads the split back from the file's header, so
// a restarted graylane sees what is in force.
//
// Sync re-renders the split in force with fresh instances; wire it to the
// backend's adapters.Notifier so upstream servers follow instances.
package nginx
