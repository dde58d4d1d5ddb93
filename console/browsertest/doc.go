// Package browsertest drives graylane's web console in Debian's Chromium
// (headless, through the DevTools protocol with chromedp) against a real
// graylane binary with embedded etcd, real demo processes and a webhook
// deploy system: the tests behind issue 16's list, app page, actions,
// editor, sign-in, screenshots and the 2,000-app first screen.
//
// Entry points: StartBrowser (a browser that records every console error
// and uncaught exception of its pages) and NewDeploySystem (a deploy
// system for the webhook backend that runs whatever it is asked to, at
// once). Under GRAYLANE_INTEGRATION=1 a missing chromium fails the tests.
package browsertest
