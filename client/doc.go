// Package client is a Go client for graylane's HTTP API, used by the
// graylane CLI and by end-to-end tests.
//
// Entry point: New(baseURL). Watch follows an app's Server-Sent Events.
package client
