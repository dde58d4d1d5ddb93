// Package sshdial is how graylane connects to hosts over SSH, shared by
// the ssh backend (deploying to hosts) and the docker backend (ssh://
// engines): public-key login, host keys always verified against
// known_hosts (an unknown host or a changed key is refused, never trusted
// on first use), the server asked for the key types known_hosts holds for
// it, and one cached connection per user@address, re-dialled when it
// breaks.
//
// Entry points: Dial (one connection), NewPool (cached connections and
// sessions), LoadKey.
package sshdial
